"""Render a benchmark report as text tables or JSON (sorted keys), and optionally a plot."""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["render_table", "render_json", "render_plot"]


def _ms(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.1f}"


def _x(x: Any) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _mb(x: Any) -> str:
    return "-" if x is None else f"{x / 1e6:.3f}"


def _name(r: dict[str, Any]) -> str:
    return r["strategy"] + ("" if r["compression"] is None else f" c={r['compression']:g}")


def render_table(report: dict[str, Any]) -> str:
    from tabulate import tabulate

    cfg = report["config"]
    delay = "" if not cfg["inter_delay_s"] else f", +{cfg['inter_delay_s'] * 1e6:.0f} us per egress"
    head = (f"emulated {cfg['emulate']} hosts x ranks, {cfg['inter_bw_bits'] / 1e9:g} Gbit/s per host NIC"
            f"{delay}; "
            f"model {cfg['model']}, batch/rank {cfg['per_rank_batch']}, {cfg['steps']} steps after "
            f"{cfg['warmup']} warm-up")
    rows = report["results"]
    timing = [[_name(r), f"{_ms(r['step_time_median_s'])} [{_ms(r['step_time_p10_s'])}-{_ms(r['step_time_p90_s'])}]",
               f"{_ms(r['exchange_time_median_s'])} [{_ms(r['exchange_time_p10_s'])}-{_ms(r['exchange_time_p90_s'])}]",
               _ms(r["exchange_wait_median_s"]), _ms(r["sync_time_median_s"]),
               _x(r["speedup_vs_flat"]), _x(r["speedup_vs_torchrec"]), _x(r["exchange_speedup_vs_flat"])]
              for r in rows]
    t1 = tabulate(timing, headers=["strategy", "step ms med [p10-p90]", "exchange ms med [p10-p90]",
                                   "exch+wait ms", "grad sync ms", "vs flat", "vs torchrec", "exch vs flat"])
    traffic = [[_name(r), _mb(r["cross_host_bytes_per_rank"]), _mb(r["analytic_min_cross_host_bytes_per_rank"]),
                _x(r["cross_bytes_vs_min"]), f"{r['cross_host_messages_per_rank']:.1f}",
                _mb(r["intra_host_bytes_per_rank"]), f"{r['intra_host_messages_per_rank']:.1f}",
                _ms(r["nic_limit_s"]), _x(r["exchange_vs_nic_limit"]), _ms(r.get("predicted_exchange_s")),
                "-" if r.get("prediction_error") is None else f"{r['prediction_error'] * 100:+.0f}%"]
               for r in rows]
    t2 = tabulate(traffic, headers=["strategy", "cross MB/rank", "analytic min", "/min", "cross msgs",
                                    "intra MB/rank", "intra msgs", "NIC limit ms", "exch/limit",
                                    "model ms", "model err"])
    lines = [head, "", t1, "", "per step and rank (exchanges only; grad all-reduce excluded):", t2]
    for s, why in sorted(report.get("skipped", {}).items()):
        lines.append(f"skipped {s}: {why}")
    p = report.get("probe") or {}
    if p:
        lines.append("links probed: " + ", ".join(
            f"{k} {v / 1e6:.0f} MB/s" if k.endswith("_bw") else f"{k} {v * 1e6:.0f} us" for k, v in sorted(p.items())))
    td = report["teardown"]
    lines.append("teardown: clean" if td["clean"] else f"teardown: LEFTOVERS {td['leftover_namespaces']}")
    return "\n".join(lines)


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str)


def render_plot(report: dict[str, Any], path: str) -> str:
    """Bar chart of step and exchange time per strategy; returns the path (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    names = [_name(r) for r in rows]
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 2, 4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["step_time_median_s"] * 1e3 for r in rows], 0.4, label="step")
    ax.bar([x + 0.2 for x in xs], [r["exchange_time_median_s"] * 1e3 for r in rows], 0.4, label="exchange")
    ax.set_xticks(list(xs), names, rotation=20)
    ax.set_ylabel("ms per step (median)")
    ax.set_title(f"emulated {report['config']['emulate']} @ {report['config']['inter_bw_bits'] / 1e9:g} Gbit/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path
