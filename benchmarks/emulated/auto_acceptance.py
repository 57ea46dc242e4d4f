"""The acceptance check of ``strategy="auto"`` on bench reports with the auto row (``bench --strategy auto``).

    python -m benchmarks.emulated.auto_acceptance SWEEP.json [MORE.json ...] [--format json]

At every point (each sweep point, or the one point of a plain report) it checks:

* **near the best**: the auto row's step is within :data:`WITHIN_BEST` (5 %) of the best measured
  candidate's: the per-round ratio auto / best (paired: the same interleaved rounds) has a median
  <= 1.05. The candidates are the runs ``strategy="auto"`` searches (flat, sptt, sptt_tm, every
  wire) that it may choose at that quality: exact ones (flat / sptt on an fp32 wire) and those whose
  ΔAUC was measured within the budget on every data set (``bench --quality``); ``--any-quality``
  compares with every candidate run instead. The best of all candidate runs is reported either way.
* **never slower than flat**: the median of auto / flat (fp32) <= 1 + :data:`SLOWER_THAN_FLAT` (3 %).

**CI-aware verdicts** per check: ``pass`` (median within the bound), ``within CI`` (median beyond the
bound, the 95 % bootstrap interval of the paired ratio reaches it: not distinguishable from
passing), ``fail`` (the whole interval beyond the bound). A point without an auto row fails. The
report passes when no check fails; the exit code is 0 then, 1 otherwise. CPU-bound points (the box,
not the network, set the step) are marked. When the auto row reused a candidate's samples (the
chosen candidate is a timed run), its ratio to that run is exactly 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from benchmarks.emulated.headline import equal_quality
from benchmarks.emulated.stats import paired_ratio

__all__ = ["WITHIN_BEST", "SLOWER_THAN_FLAT", "CANDIDATE_STRATEGIES", "check_point", "check_report", "main"]

WITHIN_BEST = 0.05
SLOWER_THAN_FLAT = 0.03
CANDIDATE_STRATEGIES = ("flat", "sptt", "sptt_tm")


def _eligible(row: dict[str, Any], any_quality: bool) -> bool:
    if row["strategy"] not in CANDIDATE_STRATEGIES:
        return False
    if any_quality:
        return True
    exact = row["strategy"] in ("flat", "sptt") and row.get("wire_dtype") in (None, "fp32", "native")
    return exact or bool(equal_quality(row))


def _verdict(ratio: dict[str, Any], bound: float) -> str:
    if ratio["median"] <= 1 + bound:
        return "pass"
    return "within CI" if ratio["ci95"][0] <= 1 + bound else "fail"


def _ratio(auto: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    if auto.get("auto", {}).get("reused_samples_of") == other["run"]:
        return {"median": 1.0, "ci95": [1.0, 1.0], "n": len(auto["step_samples_s"]), "enough_rounds": True,
                "same_samples": True}
    return paired_ratio(auto["step_samples_s"], other["step_samples_s"])


def check_point(rows: list[dict[str, Any]], any_quality: bool = False) -> dict[str, Any]:
    """The checks of one point's rows (module docstring)."""
    auto = next((r for r in rows if r["strategy"] == "auto"), None)
    if auto is None:
        return {"ok": False, "why": "no auto row (run the bench with --strategy auto)"}
    cands = [r for r in rows if _eligible(r, any_quality)]
    every = [r for r in rows if r["strategy"] in CANDIDATE_STRATEGIES]
    flat = next((r for r in rows if r["run"] == "flat"), None)
    out: dict[str, Any] = {"chosen": auto["auto"]["chosen"], "reused_samples_of": auto["auto"].get("reused_samples_of"),
                           "uncertain": auto["auto"].get("uncertain"), "auto_step_s": auto["step_time_median_s"],
                           "predicted_step_s": auto["auto"].get("predicted_step_s"),
                           "candidates": [r["run"] for r in cands]}
    if every:
        out["best_any_quality"] = min(every, key=lambda r: r["step_time_median_s"])["run"]
    if cands:
        best = min(cands, key=lambda r: r["step_time_median_s"])
        ratio = _ratio(auto, best)
        out["best"] = {"run": best["run"], "step_s": best["step_time_median_s"], "auto_over_best": ratio,
                       "verdict": _verdict(ratio, WITHIN_BEST)}
    if flat is not None:
        ratio = _ratio(auto, flat)
        out["flat"] = {"auto_over_flat": ratio, "verdict": _verdict(ratio, SLOWER_THAN_FLAT)}
    checks = [out[k]["verdict"] for k in ("best", "flat") if k in out]
    out["ok"] = bool(checks) and "fail" not in checks
    if not checks:
        out["why"] = "no candidate run and no flat run to compare with"
    return out


def _points(report: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], bool]]:
    if report.get("sweep"):
        return [(", ".join(f"{k}={v}" for k, v in p["point"].items()), p["results"], bool(p.get("cpu_bound")))
                for p in report["sweep"]]
    return [("(one point)", report.get("results", []), any(r.get("box_bound") for r in report.get("results", [])))]


def check_report(report: dict[str, Any], any_quality: bool = False) -> dict[str, Any]:
    """{"ok", "points": [{"point", "cpu_bound", ...check_point}], "loaded_box"} of one bench report."""
    points = []
    for name, rows, cpu in _points(report):
        points.append({"point": name, "cpu_bound": cpu, **check_point(rows, any_quality)})
    return {"ok": bool(points) and all(p["ok"] for p in points), "points": points,
            "loaded_box": bool(report.get("loaded_box"))}


def _line(p: dict[str, Any]) -> str:
    if "chosen" not in p:
        return f"{p['point']}: FAIL {p['why']}"
    text = f"{p['point']}: auto chose {p['chosen']}" + (" (uncertain)" if p.get("uncertain") else "")
    if p.get("reused_samples_of"):
        text += f" [samples of {p['reused_samples_of']}]"
    if "best" in p:
        b = p["best"]
        r = b["auto_over_best"]
        text += f"; vs best {b['run']} {r['median']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] {b['verdict']}"
    if "flat" in p:
        f = p["flat"]["auto_over_flat"]
        text += f"; vs flat {f['median']:.3f} [{f['ci95'][0]:.3f}, {f['ci95'][1]:.3f}] {p['flat']['verdict']}"
    if p.get("best_any_quality") and p.get("best", {}).get("run") != p["best_any_quality"]:
        text += f"; fastest at any quality: {p['best_any_quality']}"
    return text + ("; CPU-bound" if p["cpu_bound"] else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="bench --format json reports with the auto row")
    ap.add_argument("--any-quality", action="store_true", help="compare with every candidate run, whatever its quality")
    ap.add_argument("--format", choices=("text", "json"), default="text")
    args = ap.parse_args(argv)
    results = {}
    for path in args.reports:
        with open(path) as f:
            results[path] = check_report(json.load(f), args.any_quality)
    ok = all(r["ok"] for r in results.values())
    if args.format == "json":
        print(json.dumps({"ok": ok, "reports": results}, indent=2, sort_keys=True))
    else:
        for path, r in results.items():
            print(f"{path}: {'PASS' if r['ok'] else 'FAIL'}" + (" (LOADED BOX: not results)" if r["loaded_box"] else ""))
            for p in r["points"]:
                print("  " + _line(p))
        print(f"acceptance (auto within {WITHIN_BEST:.0%} of the best candidate, at most {SLOWER_THAN_FLAT:.0%} "
              f"slower than flat, CI-aware): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
