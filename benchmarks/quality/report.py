"""Aggregate quality runs over seeds and render them as Markdown tables."""
from __future__ import annotations

import statistics
from collections import OrderedDict
from typing import Iterable, Sequence

from benchmarks.quality.harness import RunResult

__all__ = ["summarize", "results_table", "baselines_table", "mean_spread"]


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation; 0 for one value)."""
    vals = [float(v) for v in values]
    if not vals:
        return float("nan"), float("nan")
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def summarize(results: Iterable[RunResult]) -> list[dict]:
    """One row per variant: AUC, log-loss, paired ΔAUC vs flat (mean, spread), ARI, balance, affinity."""
    results = list(results)
    flat = {(r.data, r.seed): r for r in results if r.variant == "flat"}
    groups: "OrderedDict[tuple[str, str], list[RunResult]]" = OrderedDict()
    for r in results:
        groups.setdefault((r.data, r.key), []).append(r)
    rows = []
    for (data, key), runs in groups.items():
        row = {"data": data, "variant": key, "seeds": len(runs)}
        row["auc"], row["auc_spread"] = mean_spread([r.auc for r in runs])
        row["log_loss"], row["log_loss_spread"] = mean_spread([r.log_loss for r in runs])
        deltas = [r.auc - flat[(r.data, r.seed)].auc for r in runs if (r.data, r.seed) in flat]
        row["d_auc"], row["d_auc_spread"] = mean_spread(deltas) if deltas else (float("nan"), float("nan"))
        for name in ("ari", "balance", "affinity_captured"):
            vals = [getattr(r, name) for r in runs if getattr(r, name) is not None]
            row[name] = statistics.fmean(vals) if vals else None
        row["seconds"] = statistics.fmean(r.seconds for r in runs)
        row["feed"] = ",".join(sorted({r.feed for r in runs if r.feed})) or "—"
        rows.append(row)
    return rows


def _f(v, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def results_table(rows: Sequence[dict]) -> str:
    """Markdown: variant, feed used, AUC ± spread, log-loss ± spread, ΔAUC vs flat, ARI, balance, affinity, time."""
    head = ("| data | variant | feed | seeds | AUC | log-loss | ΔAUC vs flat (paired) | ARI | balance max/mean "
            "| affinity captured | s/run |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['variant']} | {r.get('feed', '—')} | {r['seeds']} "
            f"| {r['auc']:.4f} ± {r['auc_spread']:.4f} "
            f"| {r['log_loss']:.4f} ± {r['log_loss_spread']:.4f} | {r['d_auc']:+.4f} ± {r['d_auc_spread']:.4f} "
            f"| {_f(r['ari'], 3)} | {_f(r['balance'], 3)} | {_f(r['affinity_captured'], 3)} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def baselines_table(rows: Sequence[dict]) -> str:
    """Markdown: partitioner baselines side by side (mean over seeds of ARI, affinity captured, balance)."""
    by: "OrderedDict[str, list[dict]]" = OrderedDict()
    for r in rows:
        by.setdefault(r["partitioner"], []).append(r)
    lines = ["| partitioner | seeds | ARI vs planted | affinity captured | balance max/mean |", "|---|---|---|---|---|"]
    for p, rs in by.items():
        ari = [r["ari"] for r in rs if r["ari"] is not None]
        a_m, a_s = mean_spread(ari) if ari else (None, None)
        c_m, c_s = mean_spread([r["affinity_captured"] for r in rs])
        b_m, _ = mean_spread([r["balance"] for r in rs])
        ari_text = "—" if a_m is None else f"{a_m:.3f} ± {a_s:.3f}"
        lines.append(f"| {p} | {len(rs)} | {ari_text} | {c_m:.3f} ± {c_s:.3f} | {b_m:.3f} |")
    return "\n".join(lines) + "\n"
