"""From rows to claims: paired speedups with confidence intervals, the best equal-quality baseline.

Each row carries ``step_samples_s`` (the slowest rank's time of each measured round). A speedup of
row ``r`` over a reference is the per-round ratio ``ref[k] / r[k]`` (:func:`.stats.paired_ratio`:
median and bootstrap 95 % CI). Baselines are flat (any wire) and TorchRec's shardings (any qcomm
codec). The **best baseline of equal quality** is the fastest baseline whose quality is known to be
within :data:`QUALITY_TOLERANCE` AUC of flat fp32 on every data set measured (``--quality``); without
quality measurements only lossless baselines (fp32 wire) qualify, and the report says so.
"""
from __future__ import annotations

from typing import Any

from benchmarks.emulated.stats import median_ci, paired_ratio

__all__ = ["BASELINES", "QUALITY_TOLERANCE", "add_claims", "equal_quality"]

BASELINES = ("flat", "torchrec_tw", "torchrec_rw", "torchrec_twrw", "torchrec_towers")
QUALITY_TOLERANCE = 0.002  # ΔAUC >= -0.002 on every data set


def equal_quality(row: dict[str, Any]) -> bool | None:
    """True / False when ``delta_auc`` was measured on every data set; None when it was not."""
    d = row.get("delta_auc") or {}
    vals = [v.get("median") if isinstance(v, dict) else v for v in d.values()]
    if not vals or any(v is None for v in vals):
        return None
    return all(v >= -QUALITY_TOLERANCE for v in vals)


def _is_lossless(row: dict[str, Any]) -> bool:
    """An fp32 wire and no Tower-Module compression (``torchrec_towers@c`` compresses like ``sptt_tm@c``)."""
    compressed = (row.get("compression_effective") or 1.0) > 1.0 + 1e-9
    return row.get("wire_dtype") in (None, "fp32", "native") and not compressed


def _best_baseline(rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    cands = []
    for r in rows:
        if r["strategy"] not in BASELINES:
            continue
        q = equal_quality(r)
        if q or (q is None and _is_lossless(r)):
            cands.append(r)
    basis = ("equal quality measured (--quality)" if any(equal_quality(r) is not None for r in rows)
             else "lossless baselines only (no quality measured)")
    return (min(cands, key=lambda r: r["step_time_s"]["median"]) if cands else None), basis


def add_claims(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """In place per row: ``step_time_s``, ``speedup_vs_flat``, ``speedup_vs_best_baseline`` (median and
    CI of paired ratios), ``exchange_speedup_vs_flat``; returns {"best_baseline", "basis"}."""
    for r in rows:
        r["step_time_s"] = median_ci(r["step_samples_s"])
    flat = next((r for r in rows if r["run"] == "flat"), None)
    best, basis = _best_baseline(rows)
    for r in rows:
        r["speedup_vs_flat"] = paired_ratio(flat["step_samples_s"], r["step_samples_s"]) if flat else None
        r["speedup_vs_best_baseline"] = (paired_ratio(best["step_samples_s"], r["step_samples_s"])
                                         if best else None)
        r["exchange_speedup_vs_flat"] = (flat["exchange_time_median_s"] / r["exchange_time_median_s"]
                                         if flat and r["exchange_time_median_s"] else None)
    return {"best_baseline": best["run"] if best else None, "basis": basis}
