"""Render a benchmark report as text tables or JSON (sorted keys), and optionally a plot."""
from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["render_table", "render_json", "render_plot", "render_sweep_table", "render_sweep_plot", "auto_lines"]


def _ms(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x * 1e3:.1f}"


def _x(x: Any) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _mb(x: Any) -> str:
    return "-" if x is None else f"{x / 1e6:.3f}"


def _name(r: dict[str, Any]) -> str:
    label = r.get("compression_label")
    c = "" if r["compression"] is None else f" {label or 'c=%g' % r['compression']}"
    wire = r.get("wire_dtype")
    return r["strategy"] + c + ("" if wire in (None, "fp32", "native") else f" +{wire}")


def _ci(x: Any, fmt=lambda v: f"{v:.2f}x") -> str:
    """``median [lo, hi]`` of a {"median", "ci95"} dict."""
    if not x or x.get("median") is None:
        return "-"
    lo, hi = x["ci95"]
    return f"{fmt(x['median'])} [{fmt(lo)}, {fmt(hi)}]"


def _auc(r: dict[str, Any]) -> str:
    d = r.get("delta_auc") or {}
    return ", ".join(f"{k} {v['median']:+.4f}" if isinstance(v, dict) else f"{k} {v:+.4f}"
                     for k, v in sorted(d.items())) or "-"


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
    w, target = report.get("flat_measured_exchange_share"), cfg.get("wire_share_target")
    if w is not None:
        lines.append(f"flat's measured exchange share {w:.3f}" + (f" (target {target:g})" if target else ""))
    if report.get("loaded_box"):
        lines.append("LOADED BOX (--force): these timings are not results")
    lines.append(f"best baseline: {report.get('best_baseline')} ({report.get('best_baseline_basis')})")
    if report.get("cpu_share_per_rank"):
        lines.append(f"CPU share per rank while all compute (sampled every round): "
                     f"{report['cpu_share_per_rank']:.2f} of a core (cost model k = {1 / report['cpu_share_per_rank']:.2f})")
    if cfg["steps"] < 30:
        lines.append(f"WARNING: {cfg['steps']} paired rounds; the confidence intervals need >= 30")
    return lines


def render_table(report: dict[str, Any]) -> str:
    from tabulate import tabulate

    rows = report["results"]
    timing = [[_name(r), ",".join(r.get("feed") or []) or "-", _ci(r.get("step_time_s"), _ms),
               _ms(r["exchange_time_median_s"]), _pct(r.get("measured_exchange_share")),
               _ci(r.get("speedup_vs_flat")), _ci(r.get("speedup_vs_best_baseline")), _auc(r),
               _x(r.get("bound")), "-" if r.get("efficiency") is None else
               f"{r['efficiency']:.2f}" + (" BUG?" if r.get("efficiency_flag") else ""),
               _ms(r.get("non_wire_s")), _ms(r.get("wire_s")), _pct(r.get("cpu_busy"))]
              for r in rows]
    t1 = tabulate(timing, headers=["run", "feed", "step ms med [95% CI]", "exch ms", "exch share",
                                   "vs flat [95% CI]", "vs best baseline", "ΔAUC", "bound", "efficiency",
                                   "C_s ms", "wire ms", "CPU busy"])
    model = [[_name(r), (r.get("descriptor") or {}).get("compression_label", "-"),
              (r.get("descriptor") or {}).get("interaction", {}).get("vectors", "-"),
              (r.get("descriptor") or {}).get("interaction", {}).get("first_layer_in", "-"),
              (r.get("descriptor") or {}).get("dense_parameters", "-"),
              (r.get("descriptor") or {}).get("tower_module_parameters", "-")] for r in rows]
    t0 = tabulate(model, headers=["run", "compression", "interaction vectors", "first layer in",
                                  "dense params", "TM params"])
    traffic = [[_name(r), _mb(r["cross_host_bytes_per_rank"]), _mb(r["analytic_min_cross_host_bytes_per_rank"]),
                _x(r["cross_bytes_vs_min"]), f"{r['cross_host_messages_per_rank']:.1f}",
                _mb(r["intra_host_bytes_per_rank"]), _ms(r["nic_limit_s"]), _x(r["exchange_vs_nic_limit"]),
                *_nic_cells(r)] for r in rows]
    t2 = tabulate(traffic, headers=["strategy", "cross MB/rank", "analytic min", "/min", "cross msgs",
                                    "intra MB/rank", "NIC limit ms", "exch/limit", "NIC tx/rx util",
                                    "both ways", "one way"])
    lines = [*_head(report), "", t0, "", t1, "", "per step and rank (exchanges only; gradient reductions excluded); "
             "host 0's NIC during cross-host exchanges (10 ms bins):", t2]
    for r in rows:
        if r.get("box_bound"):
            lines.append(f"WARNING: {_name(r)}: the box, not the network, is the bottleneck (CPU busy "
                         f"{_pct(r['cpu_busy'])} of {r['cores']} cores over the step)")
    lines += auto_lines(rows)
    for s, why in sorted(report.get("skipped", {}).items()):
        lines.append(f"skipped {s}: {why}")
    p = report.get("probe") or {}
    if p:
        lines.append("links probed: " + ", ".join(
            f"{k} {v / 1e6:.0f} MB/s" if k.endswith("_bw") else f"{k} {v * 1e6:.0f} us" for k, v in sorted(p.items())))
    td = report["teardown"]
    lines.append("teardown: clean" if td["clean"] else f"teardown: LEFTOVERS {td['leftover_namespaces']}")
    return "\n".join(lines)


def auto_lines(rows: list[dict[str, Any]]) -> list[str]:
    """What the auto row's choice stated (benchmarks/emulated/auto_row.py), one line."""
    out = []
    for r in rows:
        a = r.get("auto")
        if not a:
            continue
        text = (f"auto: chose {a['chosen']} ({a['describe']}), predicted {a['predicted_step_s'] * 1e3:.1f} ms "
                f"±{a['predicted_rel_error'] * 100:.0f} %, measured {_ms(r['step_time_median_s'])} ms")
        if a.get("runner_up"):
            text += f"; margin {a['margin'] * 100:.1f} % to {a['runner_up']}" + (" (uncertain)" if a["uncertain"] else "")
        text += (f"; reuses the samples of run {a['reused_samples_of']}" if a.get("reused_samples_of")
                 else "; timed as its own run") + f"; chose in {a['choose_s']:.1f} s, quality {a['quality']}"
        out.append(text)
    return out


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


def render_sweep_table(report: dict[str, Any]) -> str:
    """One line per sweep point and run: flat's measured share, speedups with CIs; then crossovers."""
    from tabulate import tabulate

    rows = []
    for p in report["sweep"]:
        point = ", ".join(f"{k}={v}" for k, v in p["point"].items())
        for r in p["results"]:
            rows.append([point, _pct(p["flat_measured_exchange_share"]), "yes" if p["cpu_bound"] else "",
                         _name(r), _ci(r.get("step_time_s"), _ms), _ci(r.get("speedup_vs_flat")),
                         _ci(r.get("speedup_vs_best_baseline")), "-" if r.get("efficiency") is None
                         else f"{r['efficiency']:.2f}"])
    lines = [tabulate(rows, headers=["point", "flat exch share", "CPU-bound", "run", "step ms [95% CI]",
                                     "vs flat", "vs best baseline", "efficiency"])]
    for p in report["sweep"]:
        lines += [f"{', '.join(f'{k}={v}' for k, v in p['point'].items())}: {t}" for t in auto_lines(p["results"])]
    lines += ["", "crossover (flat's measured share):"]
    for key, c in sorted(report["crossover"].items()):
        lines.append(f"  {key}: vs flat {c['vs_flat']}, vs best baseline {c['vs_best_baseline']}")
    if report.get("loaded_box"):
        lines.append("LOADED BOX (--force): these timings are not results")
    return "\n".join(lines)


def render_sweep_plot(report: dict[str, Any], path: str) -> str:
    """Speedup vs flat (median, 95 % CI band) against flat's measured exchange share, one line per run;
    CPU-bound points drawn as crosses. Returns the path (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = sorted({r["run"] for p in report["sweep"] for r in p["results"]} - {"flat"})
    for key in keys:
        pts = sorted((p["flat_measured_exchange_share"], r["speedup_vs_flat"], p["cpu_bound"])
                     for p in report["sweep"] for r in p["results"]
                     if r["run"] == key and p["flat_measured_exchange_share"] is not None and r.get("speedup_vs_flat"))
        if not pts:
            continue
        xs = [x for x, _, _ in pts]
        line, = ax.plot(xs, [s["median"] for _, s, _ in pts], marker="o", label=key)
        ax.fill_between(xs, [s["ci95"][0] for _, s, _ in pts], [s["ci95"][1] for _, s, _ in pts],
                        color=line.get_color(), alpha=0.2)
        bound = [(x, s["median"]) for x, s, cpu in pts if cpu]
        if bound:
            ax.scatter(*zip(*bound), marker="x", s=80, color="black", zorder=5)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("flat's measured exchange share of its step")
    ax.set_ylabel("speedup vs flat fp32 (median, 95% CI)")
    ax.set_title("emulated bench" + (" (LOADED BOX: not results)" if report.get("loaded_box") else "")
                 + "; x = CPU-bound point")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    return path
