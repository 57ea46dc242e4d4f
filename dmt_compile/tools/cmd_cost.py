"""The ``cost`` and ``topo`` subcommands of ``dmt-compile`` (registered by the main CLI).

``dmt-compile cost --topology h100:64 [--model SPEC | --features F --dim D --batch B]
[--compression C ...] [--strategies ...] [--sweep 16,32,...] [--format table|json]
[--plot out.png] [--param NAME=VALUE ...]``

``dmt-compile topo SPEC [--format text|json|dot]``

Each ``run_*`` writes to the given text stream and returns an exit code; typed errors
(:class:`~dmt_compile.errors.DmtError`) propagate to the main CLI, which reports them.
"""
from __future__ import annotations

import argparse
import json
from typing import TextIO

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_limits import MAX_COST_FEATURES
from dmt_compile.topo.cost_report import (DEFAULT_STRATEGIES, Config, compare, format_compare, format_sweep,
                                          report_json, sweep)
from dmt_compile.topo.cost_symbols import CostParams
from dmt_compile.topo.network import to_dot
from dmt_compile.topo.presets import preset_names
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["register", "run_cost", "run_topo", "model_feature_widths"]


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Register ``cost`` and ``topo`` on an argparse subparsers object."""
    presets = ", ".join(preset_names())
    c = subparsers.add_parser(
        "cost", help="predict flat vs TWRW vs SPTT vs SPTT+TM embedding time",
        description="Price every embedding strategy on a topology with the sympy cost model "
                    f"(docs/COST_MODEL.md). Presets: {presets}.")
    c.add_argument("--topology", default=None, help="e.g. h100:64, a100:8x8, or a JSON dict (required unless --fit)")
    c.add_argument("--fit", default=None, metavar="A.json,B.json",
                   help="fit the step model's free parameters on these bench reports (see benchmarks/emulated/fit_runs.py)")
    c.add_argument("--held-out", default="", metavar="C.json,...",
                   help="with --fit: predict these reports' rows from their description and print the errors")
    c.add_argument("--save", default=None, metavar="P.json",
                   help="with --fit: write the fitted parameters and their held-out error (plan --strategy auto "
                        "--cost-params P.json prices candidates with them)")
    c.add_argument("--model", metavar="MODEL_SPEC", help="take feature widths from a model (path.py:factory)")
    c.add_argument("--features", type=int, default=26, help="number of sparse features (default 26)")
    c.add_argument("--dim", type=int, default=128, help="embedding width per feature (default 128)")
    c.add_argument("--batch", type=int, default=1024, help="per-rank batch (default 1024)")
    c.add_argument("--pooling", type=float, default=1.0, help="ids per sample per feature (default 1)")
    c.add_argument("--compression", type=float, nargs="+", default=[4.0, 16.0], metavar="C",
                   help="Tower-Module compression ratios for sptt_tm (default 4 16)")
    c.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help=f"comma list from {','.join(DEFAULT_STRATEGIES)}")
    c.add_argument("--host-split", choices=("column", "table"), default="column",
                   help="how features are cut over hosts/towers (default column: balanced)")
    c.add_argument("--bytes-per-element", type=int, default=4, help="4 for fp32, 2 for bf16")
    c.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="override a CostParams field, e.g. congestion=0.07 (repeatable)")
    c.add_argument("--sweep", help="comma list of GPU counts, e.g. 16,32,64,128,256,512")
    c.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default: one row per strategy) or json (every term of the model)")
    c.add_argument("--plot", metavar="OUT.png",
                   help="with --sweep: draw the predicted speedup vs GPUs at 200 dpi (needs matplotlib)")
    c.set_defaults(func=run_cost)

    t = subparsers.add_parser("topo", help="show a topology (text, JSON or Graphviz DOT)",
                              description=f"Describe a topology spec. Presets: {presets}.")
    t.add_argument("spec", help="e.g. 2x4, h100:64, grand-teton:6144, or a JSON dict")
    t.add_argument("--format", choices=("text", "json", "dot"), default="text",
                   help="text (default: hosts, GPUs, links and bandwidths), json, or Graphviz dot")
    t.add_argument("--png", metavar="FILE", default=None,
                   help="also draw the topology (hosts, GPUs, bandwidths) to FILE (needs matplotlib)")
    t.set_defaults(func=run_topo)


def model_feature_widths(spec: str) -> list[int]:
    """Embedding elements per sample of each sparse feature group of a MODEL_SPEC."""
    from dmt_compile.api import transform
    from dmt_compile.capture.model_spec import load_model_spec

    model, inputs = load_model_spec(spec)
    dmt = transform(model, "1x1", inputs, num_towers=1)
    return [int(g.width) for g in dmt.detection.groups]


def _params(items: list[str]) -> CostParams:
    overrides = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            overrides[name.strip()] = float(value)
        except ValueError:
            raise CostModelError(f"bad --param {item!r}", "write NAME=NUMBER, e.g. congestion=0.07") from None
    return CostParams().with_overrides(**overrides)


def _gpus(text: str) -> list[int]:
    try:
        gpus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CostModelError(f"bad --sweep {text!r}", "write GPU counts like 16,32,64") from None
    if not gpus or any(g < 1 for g in gpus):
        raise CostModelError(f"bad --sweep {text!r}", "write positive GPU counts like 16,32,64")
    return gpus


def _require_matplotlib():
    """pyplot, or a typed error with the install hint (checked before any work is printed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise CostModelError("--plot needs matplotlib, which is not installed",
                             "pip install 'dmt_compile[plot]' (or matplotlib), or drop --plot") from exc
    return plt


def _assumptions(config: Config, from_model: str | None) -> str:
    widths = sorted(set(config.feature_widths))
    dim = f"dim {widths[0]:g}" if len(widths) == 1 else f"widths {widths[0]:g}-{widths[-1]:g}"
    dtype = {4: "fp32", 2: "bf16/fp16", 1: "int8/fp8"}.get(config.bytes_per_element, f"{config.bytes_per_element} B")
    source = f" from {from_model}" if from_model else ""
    return (f"{len(config.feature_widths)} features{source}, {dim}, batch {config.batch_per_rank} per GPU, "
            f"{dtype}, pooling {config.ids_per_sample[0] if config.ids_per_sample else 1:g}")


def _plot(result: dict, path: str, topo: Topology, config: Config, from_model: str | None, plt) -> None:
    """Speedup over flat vs GPU count: GPU counts as numbers on a log axis, the assumptions in the title."""
    gpus = sorted(result)
    names = [n for n in result[gpus[0]] if n != "flat"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for n in names:
        ax.plot(gpus, [result[g][n]["speedup"] for g in gpus], marker="o", label=n)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="flat (table-wise)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(gpus)
    ax.set_xticklabels([str(g) for g in gpus])
    ax.minorticks_off()
    ax.set_xlabel("GPUs")
    ax.set_ylabel("speedup of the embedding stage over flat")
    ax.set_title(f"{topo.name or topo}: cost-model prediction (fwd + bwd per step)\n{_assumptions(config, from_model)}",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=200)
    plt.close(fig)


def run_cost(args: argparse.Namespace, stdout: TextIO) -> int:
    """Price the strategies (or sweep GPU counts) and write a table or JSON to `stdout`."""
    if getattr(args, "fit", None):
        from dmt_compile.tools.applications import load_application

        run_fit = load_application("emulated.fit_runs", "cost --fit").run_fit
        return run_fit([p for p in args.fit.split(",") if p], [p for p in args.held_out.split(",") if p], stdout,
                       save=getattr(args, "save", None))
    if getattr(args, "save", None):
        raise CostModelError("--save writes fitted parameters", "add --fit A.json,B.json (and --held-out C.json)")
    if args.topology is None:
        raise CostModelError("--topology is required", "e.g. --topology h100:64 (or --fit bench reports)")
    topo = as_topology(args.topology)
    if args.plot and not args.sweep:
        raise CostModelError("--plot draws a sweep", "add --sweep 16,32,64,... or drop --plot")
    plt = _require_matplotlib() if args.plot else None  # fail fast, before printing anything
    if getattr(args, "model", None):
        widths = model_feature_widths(args.model)
    else:
        if args.features < 1 or args.dim < 1 or args.batch < 1:
            raise CostModelError("--features, --dim and --batch must be positive", "e.g. --features 26 --dim 128")
        if args.features > MAX_COST_FEATURES:  # before building a list of that length
            raise CostModelError(f"--features must be at most {MAX_COST_FEATURES:,}, got {args.features:,}",
                                 "give the number of sparse features of a real model, e.g. --features 26")
        widths = [args.dim] * args.features
    # the compression range `transform` accepts is checked with every other input by topo.cost_limits
    config = Config(
        feature_widths=tuple(float(w) for w in widths), batch_per_rank=args.batch,
        ids_per_sample=tuple([args.pooling] * len(widths)), compressions=tuple(args.compression),
        strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
        host_split=args.host_split, bytes_per_element=args.bytes_per_element, params=_params(args.param),
    )
    if args.sweep:
        result = sweep(topo, _gpus(args.sweep), config)
        stdout.write(report_json(topo, config, result, swept=True) if args.format == "json"
                     else format_sweep(topo, result))
        if args.plot:
            _plot(result, args.plot, topo, config, getattr(args, "model", None), plt)
            if args.format == "table":
                stdout.write(f"wrote {args.plot}\n")
        return 0
    rows = compare(topo, config)
    stdout.write(report_json(topo, config, rows) if args.format == "json" else format_compare(topo, rows))
    if args.format == "table":
        stdout.write(_step_band(topo, config))
    if args.format != "json" and getattr(args, "model", None):
        stdout.write(f"\nThese rows assume towers of equal width ({args.host_split} split of the model's features) and "
                     "a generic Tower Module; `dmt-compile dump MODEL --topology ...` prices the plan transform "
                     "actually builds (its tower widths and Tower Module), so its speedup can differ.\n")
    return 0


def _step_band(topo: Topology, config: Config) -> str:
    """The fitted step model's embedding-exchange time with a band over its unfitted network
    parameters (nothing fitted here: compute terms 0, alpha, g, n_half, eta, kappa over their ranges)."""
    from dmt_compile.topo.cost_fit import RANGES, Candidate, predict_step, speedup_band

    if topo.inter_bw is None or topo.num_hosts < 2:
        return ""
    w = config.feature_widths
    ids = config.ids_per_sample
    n = topo.num_hosts
    towers = [(sum(w[t::n]), sum(ids[t::n])) for t in range(n)]
    cands = [("flat", Candidate("flat", (sum(w),), (sum(ids),), None, config.bytes_per_element)),
             ("sptt", Candidate("sptt", tuple(a for a, _ in towers), tuple(b for _, b in towers), None,
                                config.bytes_per_element))]
    cands += [(f"sptt_tm c={c:g}", Candidate("sptt_tm", tuple(a for a, _ in towers), tuple(b for _, b in towers),
                                             tuple(a / c for a, _ in towers), config.bytes_per_element))
              for c in config.compressions]
    lines = ["", "cross-host wire time per step (cost_fit.predict_step; band over the unfitted "
             + ", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in RANGES.items()) + "):"]
    for name, cand in cands:
        s, (lo, hi) = predict_step(cand, topo, config.batch_per_rank)
        x, (xlo, xhi) = speedup_band(cand, cands[0][1], topo, config.batch_per_rank)
        lines.append(f"  {name:<14} {s * 1e3:9.3f} ms  [{lo * 1e3:.3f} .. {hi * 1e3:.3f}]  "
                     f"vs flat {x:.2f}x [{xlo:.2f}x .. {xhi:.2f}x]")
    return "\n".join(lines) + "\n"


def _describe(topo: Topology) -> str:
    def gb(x: float | None) -> str:
        return "unset" if x is None else f"{x / 1e9:.4g} GB/s"

    def us(x: float | None) -> str:
        return "unset" if x is None else f"{x * 1e6:.3g} µs"

    lines = [
        f"topology {topo}  ({topo.name or 'no preset'})",
        f"  hosts x ranks/host : {topo.num_hosts} x {topo.local_size} = {topo.world_size} ranks",
        f"  intra-host         : {gb(topo.intra_bw)} per rank per direction, latency {us(topo.intra_latency)}",
        f"  inter-host (NIC)   : {gb(topo.inter_bw)} per rank per direction, latency {us(topo.inter_latency)}",
        f"  HBM / compute      : {gb(topo.hbm_bw)}, "
        + ("unset" if topo.flop_rate is None else f"{topo.flop_rate / 1e12:.4g} TFLOP/s"),
    ]
    for lv in topo.levels:
        state = "active" if lv in topo.active_levels else "collapsed (cluster fits in one)"
        lines.append(f"  level {lv.name:<12} : {lv.hosts} hosts, oversubscription {lv.oversubscription:g}:1, {state}")
    lines.append(f"  network taper      : {topo.network_taper():.3f}")
    lines.append(f"  device mesh        : {dict(zip(topo.mesh_dim_names, topo.mesh_shape))}")
    return "\n".join(lines) + "\n"


def run_topo(args: argparse.Namespace, stdout: TextIO) -> int:
    """Describe a topology spec as text, JSON (sorted keys) or DOT."""
    topo = as_topology(args.spec)
    if getattr(args, "png", None):
        from dmt_compile.tools.pictures import require_matplotlib, topology_png
        from dmt_compile.tools.transform_args import writable_file

        require_matplotlib("--png")
        writable_file(args.png, "--png")
    if args.format == "json":
        stdout.write(json.dumps(topo.to_dict(), sort_keys=True, indent=2) + "\n")
    elif args.format == "dot":
        stdout.write(to_dot(topo))
    else:
        stdout.write(_describe(topo))
    if getattr(args, "png", None):
        topology_png(topo, args.png)
        if args.format == "text":
            stdout.write(f"wrote {args.png}\n")
    return 0
