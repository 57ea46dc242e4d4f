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


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _head(report: dict[str, Any]) -> list[str]:
    cfg, m = report["config"], report["machine"]
    delay = "" if not cfg["inter_delay_s"] else f", +{cfg['inter_delay_s'] * 1e6:.0f} us per egress"
    pins = cfg.get("pinned_cores")
    lines = [f"emulated {cfg['emulate']} hosts x ranks, {cfg['inter_bw_bits'] / 1e6:.1f} Mbit/s per host NIC{delay}; "
             f"model {cfg['model']}, batch/rank {cfg['per_rank_batch']}, {cfg['steps']} steps after "
             f"{cfg['warmup']} warm-up, {'interleaved' if cfg.get('interleaved') else 'one strategy after another'}",
             f"sptt_tm: {cfg.get('tower_module', 'linear')} Tower Module, feed {cfg.get('feed')}, dense sync {cfg.get('dense_sync')}, all-to-all {cfg.get('all_to_all')}, "
             f"ranks pinned to cores {pins if pins else 'no'}; load average before {m.get('loadavg_before')} "
             f"after {m.get('loadavg_after')} ({m.get('cpus')} CPUs)"]
    w, target = report.get("wire_share"), cfg.get("wire_share_target")
    if w is not None:
        lines.append(f"flat wire share (NIC limit / step) {w:.3f}" + (f" (target {target:g})" if target else ""))
    if report.get("cpu_share_per_rank"):
        lines.append(f"CPU share per rank while all compute (sampled every round): "
                     f"{report['cpu_share_per_rank']:.2f} of a core (cost model k = {1 / report['cpu_share_per_rank']:.2f})")
    if cfg["steps"] < 10:
        lines.append(f"WARNING: {cfg['steps']} measured steps; medians of fewer than 10 steps are not a measurement")
    return lines


def render_table(report: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = report["results"]
    timing = [[_name(r), ",".join(r.get("feed") or []) or "-",
               f"{_ms(r['step_time_median_s'])} [{_ms(r['step_time_p10_s'])}-{_ms(r['step_time_p90_s'])}]",
               f"{_ms(r['exchange_time_median_s'])} [{_ms(r['exchange_time_p10_s'])}-{_ms(r['exchange_time_p90_s'])}]",
               _ms(r["sync_time_median_s"]), _x(r["speedup_vs_flat"]), _x(r["speedup_vs_torchrec"]),
               _x(r.get("amdahl_bound")), "-" if r.get("efficiency") is None else f"{r['efficiency']:.2f}",
               _pct(r.get("cpu_busy")), _ms(r.get("predicted_step_s")),
               "-" if r.get("step_prediction_error") is None else f"{r['step_prediction_error'] * 100:+.0f}%"]
              for r in rows]
    t1 = tabulate(timing, headers=["strategy", "feed", "step ms med [p10-p90]", "exchange ms med [p10-p90]",
                                   "grad sync ms", "vs flat", "vs torchrec", "Amdahl bound", "efficiency",
                                   "CPU busy", "model ms", "model err"])
    traffic = [[_name(r), _mb(r["cross_host_bytes_per_rank"]), _mb(r["analytic_min_cross_host_bytes_per_rank"]),
                _x(r["cross_bytes_vs_min"]), f"{r['cross_host_messages_per_rank']:.1f}",
                _mb(r["intra_host_bytes_per_rank"]), _ms(r["nic_limit_s"]), _x(r["exchange_vs_nic_limit"]),
                *_nic_cells(r)] for r in rows]
    t2 = tabulate(traffic, headers=["strategy", "cross MB/rank", "analytic min", "/min", "cross msgs",
                                    "intra MB/rank", "NIC limit ms", "exch/limit", "NIC tx/rx util",
                                    "both ways", "one way"])
    lines = [*_head(report), "", t1, "", "per step and rank (exchanges only; gradient reductions excluded); "
             "host 0's NIC during cross-host exchanges (10 ms bins):", t2]
    for r in rows:
        if r.get("box_bound"):
            lines.append(f"WARNING: {_name(r)}: the box, not the network, is the bottleneck (CPU busy "
                         f"{_pct(r['cpu_busy'])} of {r['cores']} cores over the step)")
    for s, why in sorted(report.get("skipped", {}).items()):
        lines.append(f"skipped {s}: {why}")
    p = report.get("probe") or {}
    if p:
        lines.append("links probed: " + ", ".join(
            f"{k} {v / 1e6:.0f} MB/s" if k.endswith("_bw") else f"{k} {v * 1e6:.0f} us" for k, v in sorted(p.items())))
    td = report["teardown"]
    lines.append("teardown: clean" if td["clean"] else f"teardown: LEFTOVERS {td['leftover_namespaces']}")
    return "\n".join(lines)


def _nic_cells(r: dict[str, Any]) -> list[str]:
    prof = (r.get("nic") or {}).get("profile")
    if not prof:
        return ["-", "-", "-"]
    return [f"{_pct(prof['tx_util'])}/{_pct(prof['rx_util'])}", _pct(prof["both_ways"]), _pct(prof["one_way"])]


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
    ax.set_title(f"emulated {report['config']['emulate']} @ {report['config']['inter_bw_bits'] / 1e6:.0f} Mbit/s")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path
