"""Re-choose ``strategy="auto"`` on a recorded bench report, after the chooser changed.

    python -m benchmarks.emulated.rechoose_auto REPORT.json --out NEW.json

At every point of the report (each sweep point, or its one run) this calls the bench's own
chooser (:func:`.auto_row.choose_for_bench`) with the point's recorded model, topology, NIC rate,
per-rank batch and ranks per core. When the new choice is a run the report timed (flat, sptt, or
sptt_tm at that c with the report's Tower Module and feed, same wire) the bench itself would have
reused that run's samples, so the auto row becomes a copy of that run's row with the new choice
(:func:`.auto_row.add_auto_rows`, as the bench builds it). When it is not, the point is listed in
``needs_rerun`` and keeps no auto row (acceptance then fails there): a choice that was never timed
needs the idle box. The output says where every auto row came from (``rechosen``).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

from benchmarks.emulated.auto_row import AUTO, add_auto_rows, choose_for_bench

__all__ = ["rechoose_point", "rechoose_report", "main"]


def _runs(rows: list[dict[str, Any]]) -> list[tuple]:
    out = []
    for r in rows:
        if r["strategy"] in ("flat", "sptt", "sptt_tm"):
            c = r.get("compression_requested") if r["strategy"] == "sptt_tm" else None
            out.append((r["strategy"], None if c is None else float(c), r.get("wire_dtype") or "fp32"))
    return out


def rechoose_point(config: dict[str, Any], rows: list[dict[str, Any]], non_wire: dict[str, float]) -> dict[str, Any]:
    """Replace the auto row of one point in place; returns what happened there."""
    hosts, local = (int(x) for x in config["emulate"].split("x"))
    cfg = SimpleNamespace(spec=config["model"], num_hosts=hosts, local_size=local,
                          per_rank_batch=config["per_rank_batch"], tower_module=config["tower_module"],
                          feed=config["feed"], cost_params=None)
    cores = len(config.get("pinned_cores") or []) or os.cpu_count() or 1
    before = next((r["auto"]["chosen"] for r in rows if r["strategy"] == AUTO), None)
    auto = choose_for_bench(cfg, config["inter_bw_bits"], hosts * local / cores, _runs(rows))
    rows[:] = [r for r in rows if r["strategy"] != AUTO]
    non_wire.pop(AUTO, None)
    if auto["run"] is None:
        return {"before": before, "after": auto["info"]["chosen"], "reused": None, "needs_rerun": True}
    add_auto_rows(rows, auto, non_wire)
    return {"before": before, "after": auto["info"]["chosen"], "reused": auto["info"]["reused_samples_of"],
            "needs_rerun": False}


def rechoose_report(report: dict[str, Any]) -> dict[str, Any]:
    """A copy of `report` with every point's auto row re-chosen (module docstring)."""
    out = copy.deepcopy(report)
    points = out["sweep"] if out.get("sweep") else [out]
    log = []
    for p in points:
        non_wire = p.get("non_wire_s")
        what = rechoose_point(p["config"], p["results"], non_wire if non_wire is not None else {})
        log.append({"point": p.get("point"), **what})
    out["rechosen"] = {"by": "benchmarks.emulated.rechoose_auto", "points": log}
    out["needs_rerun"] = [e["point"] for e in log if e["needs_rerun"]]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with open(args.report) as f:
        new = rechoose_report(json.load(f))
    with open(args.out, "w") as f:
        json.dump(new, f, indent=1, sort_keys=True)
    for e in new["rechosen"]["points"]:
        print(f"{e['point']}: {e['before']} -> {e['after']}: "
              + ("needs a rerun (not a timed run)" if e["needs_rerun"] else f"samples of {e['reused']}"))
    return 1 if new["needs_rerun"] else 0


if __name__ == "__main__":
    sys.exit(main())
