"""The markdown tables of docs/BENCHMARKS.md's evidence section, printed from the raw bench JSON.

One source: the numbers in the doc are this printer's output on the committed reports, so a reader
can regenerate them (``python -m benchmarks.emulated.evidence_tables REPORT.json [...]``). Per row:
the model that was timed (Tower Module, effective compression, feed, interaction vectors, dense
parameters), the wire format, the step median with its 95 % CI, the speedups against flat and
against the best baseline of equal quality (median of paired per-round ratios, bootstrap 95 % CI),
the roofline bound and efficiency, the serial-sum overlap ratio, the measured exchange share, and
ΔAUC on both quality data sets (median over seeds, [min, max]).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["model_text", "rows_markdown", "sweep_markdown", "main"]


def _ci(d: dict[str, Any] | None, digits: int = 2, scale: float = 1.0) -> str:
    if not d or d.get("median") is None:
        return "–"
    lo, hi = d.get("ci95") or (None, None)
    f = f"{{:.{digits}f}}"
    body = f.format(d["median"] * scale)
    return body if lo is None else f"{body} [{f.format(lo * scale)}, {f.format(hi * scale)}]"


def model_text(row: dict[str, Any]) -> str:
    """``dot c=4.33 (requested 4), hierarchical; 7 vectors, 24,719 + 9,102 TM params``."""
    d = row.get("descriptor") or {}
    if row["strategy"] != "sptt_tm":
        return f"flat's model ({d.get('dense_parameters', 0):,} dense params)" if d else "flat's model"
    inter = d.get("interaction") or {}
    vectors = inter.get("vectors")
    width = f"{vectors[0]}→{vectors[1]} vectors" if vectors else f"width {inter.get('embedding_width')}"
    feed = ",".join(sorted(set(d.get("feed") or [])))
    return (f"{d.get('tower_module')} {d.get('compression_label')}, {feed}; {width}; "
            f"{d.get('dense_parameters', 0):,} + {d.get('tower_module_parameters', 0) + d.get('decoder_parameters', 0):,} "
            f"TM/decoder params")


def _dauc(row: dict[str, Any], name: str) -> str:
    d = (row.get("delta_auc") or {}).get(name)
    if (row.get("refused") or {}).get(name):
        return "refused on this model"
    if row.get("exact"):
        return "0 (exact)"
    if not d:
        return "–"
    return f"{d['median']:+.4f} [{d['min']:+.4f}, {d['max']:+.4f}]"


def rows_markdown(report: dict[str, Any]) -> str:
    """One markdown table of a single-run report."""
    head = ("| run | model timed | step ms [95 % CI] | vs flat [95 % CI] | vs best baseline | bound | eff. "
            "| overlap | exch. share | ΔAUC synthetic | ΔAUC Adult |")
    lines = [head, "|" + "---|" * 11]
    for r in report["results"]:
        bound = "–" if r.get("bound") is None else f"{r['bound']:.2f}×"
        eff = "–" if r.get("efficiency") is None else f"{r['efficiency']:.2f}"
        ovl = "–" if r.get("overlap_ratio") is None else f"{r['overlap_ratio']:.2f}"
        share = "–" if r.get("measured_exchange_share") is None else f"{r['measured_exchange_share']:.2f}"
        lines.append(f"| {r['run']} | {model_text(r)} | {_ci(r['step_time_s'], 0, 1e3)} | "
                     f"{_ci(r.get('speedup_vs_flat'))} | {_ci(r.get('speedup_vs_best_baseline'))} | {bound} | {eff} | "
                     f"{ovl} | {share} | {_dauc(r, 'synthetic')} | {_dauc(r, 'adult')} |")
    flat = report.get("flat_measured_exchange_share")
    rate = (report.get("config") or {}).get("inter_bw_bits")
    lines.append("")
    lines.append(f"flat's measured exchange share {flat:.3f} (target {report.get('wire_share_target')}), "
                 f"NIC {rate / 1e6:.0f} Mbit/s per direction, load {report.get('load_before')} → "
                 f"{report.get('load_after')}; best baseline: {report.get('best_baseline')} "
                 f"({report.get('best_baseline_basis')})" if flat is not None and rate else "")
    return "\n".join(lines)


def sweep_markdown(report: dict[str, Any]) -> str:
    """Per sweep point: flat's measured share, CPU-bound mark, and each run's speedup vs flat / best."""
    runs = [r["run"] for r in report["sweep"][0]["results"]] if report.get("sweep") else []
    lines = ["| point | flat exch. share | CPU-bound | " + " | ".join(runs) + " |", "|" + "---|" * (3 + len(runs))]
    for p in report.get("sweep", []):
        by = {r["run"]: r for r in p["results"]}
        cells = [_ci(by[k].get("speedup_vs_flat")) if k in by else "–" for k in runs]
        point = ", ".join(f"{k} {v}" for k, v in p["point"].items())
        lines.append(f"| {point} | {p['flat_measured_exchange_share']:.2f} | {'yes' if p['cpu_bound'] else ''} | "
                     + " | ".join(cells) + " |")
    for u in report.get("unreachable", []):
        lines.append(f"\nnot run: {u['point']}: {u['reason'].splitlines()[0]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.emulated.evidence_tables", description=__doc__.split("\n")[0])
    ap.add_argument("reports", nargs="+", help="JSON reports of `dmt-compile bench --format json`")
    args = ap.parse_args(argv)
    for path in args.reports:
        with open(path) as fh:
            report = json.load(fh)
        print(f"`{path}`\n")
        print(sweep_markdown(report) if report.get("sweep") else rows_markdown(report))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
