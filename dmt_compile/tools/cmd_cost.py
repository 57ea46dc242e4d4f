"""The ``cost`` and ``topo`` subcommands of ``dmt-compile`` (registered by the main CLI).

``dmt-compile cost --topology h100:64 [--model SPEC [--tower-module TM] | --features F --dim D]
[--batch B] [--compression C ...] [--strategies ...] [--sweep 16,32,...] [--format table|json]
[--plot out.png] [--param NAME=VALUE ...]``

With ``--model`` the SPTT rows price the towers ``transform`` plans for the model on each
topology (``partition.plan_cost``, the computation ``dmt-compile dump`` prints), so both commands
print the same speedup for the same model, topology, Tower Module and compression.

``dmt-compile topo SPEC [--format text|json|dot]``

Each ``run_*`` writes to the given text stream and returns an exit code; typed errors
(:class:`~dmt_compile.errors.DmtError`) propagate to the main CLI, which reports them.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Callable, TextIO

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_limits import MAX_COST_FEATURES
from dmt_compile.printing import terminal_width
from dmt_compile.printing.progress import ProgressBar
from dmt_compile.topo.cost_report import (DEFAULT_STRATEGIES, Config, compare, format_compare, format_sweep,
                                          report_json, strategy_label, sweep, tower_loads)
from dmt_compile.topo.cost_symbols import CostParams
from dmt_compile.topo.network import to_dot
from dmt_compile.topo.presets import preset_names
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["register", "run_cost", "run_topo", "model_configs"]


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
    c.add_argument("--model", metavar="MODEL_SPEC",
                   help="price the towers `transform` plans for this model (path.py:factory) on --topology: the "
                        "numbers `dmt-compile dump` prints for the same model, Tower Module and compression")
    c.add_argument("--tower-module", default=None, metavar="TM",
                   help="with --model: the compressing Tower Module whose plan prices the sptt_tm rows (linear, "
                        "dot, cross, wukong; default linear)")
    c.add_argument("--features", type=int, default=26, help="number of sparse features (default 26)")
    c.add_argument("--dim", type=int, default=128, help="embedding width per feature (default 128)")
    c.add_argument("--batch", type=int, default=1024, help="per-rank batch (default 1024)")
    c.add_argument("--pooling", type=float, default=1.0, help="ids per sample per feature (default 1)")
    c.add_argument("--compression", type=float, nargs="+", default=[4.0, 16.0], metavar="C",
                   help="Tower-Module compression ratios for sptt_tm (default 4 16)")
    c.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help=f"comma list from {','.join(DEFAULT_STRATEGIES)}")
    c.add_argument("--host-split", choices=("column", "table"), default="column",
                   help="how features are cut over hosts: towers without --model, rw/twrw always "
                        "(default column: balanced)")
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


def _tower_plan(model, inputs, topo: Topology, tower_module: str = "identity", compression: float | None = None):
    """(TowerPlan, Detection) that `transform` builds for `model` on `topo` (its passes up to plan-feed)."""
    from dmt_compile.api import run_passes
    from dmt_compile.ir.detection import Detection
    from dmt_compile.ir.plan import TowerPlan
    from dmt_compile.passes.options import TransformOptions
    from dmt_compile.passes.pipeline import default_pipeline

    options = TransformOptions(tower_module=tower_module, compression=compression).validated()
    passes = default_pipeline(options)
    upto = next(i for i, p in enumerate(passes) if p.name == "plan-feed")
    _, ctx, _ = run_passes(model, topo, inputs, passes[:upto + 1])
    return ctx.get(TowerPlan), ctx.get(Detection)


def model_configs(args: argparse.Namespace, fields: dict, bar) -> "Callable[[Topology], Config]":
    """`Config` of each topology for `--model`: the towers of the plans `transform` builds there (identity,
    and the Tower Module at each compression), the model's features for the flat rows."""
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.partition.plan_cost import plan_config, plan_towers

    model, inputs = load_model_spec(args.model)
    compressions = fields["compressions"] if "sptt_tm" in fields["strategies"] else ()
    done: dict[str, Config] = {}

    def config_for(topo: Topology) -> Config:
        if str(topo) not in done:
            done[str(topo)] = _plans_config(topo)
        return done[str(topo)]

    def _plans_config(topo: Topology) -> Config:
        bar.set(bar.n, f"{topo}: identity")
        plan, detection = _tower_plan(model, inputs, topo)
        bar.update(1)
        towers, outs = plan_towers(plan, args.pooling), []
        for c in compressions:
            bar.set(bar.n, f"{topo}: {args.tower_module or 'linear'} c={c:g}")
            tm_plan = _tower_plan(model, inputs, topo, args.tower_module or "linear", c)[0]
            if [(d.host, d.width_in) for d in tm_plan.details] != [(d.host, d.width_in) for d in plan.details]:
                raise CostModelError(f"the plan at compression {c:g} has other towers than the identity plan",
                                     "price it with `dmt-compile dump MODEL --topology T --tower-module TM "
                                     f"--compression {c:g}`")
            outs.append(plan_towers(tm_plan).widths_out[0])
            bar.update(1)
        return plan_config(plan, detection, args.batch, args.pooling, **fields,
                           towers=replace(towers, widths_out=tuple(outs)))

    return config_for


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


def _feature_widths(args: argparse.Namespace) -> list[float]:
    """The features priced without --model (--features x --dim); a placeholder with --model, whose
    own features replace it (`model_configs`). Option mistakes are refused here, before any work."""
    if args.tower_module is not None and not args.model:
        raise CostModelError("--tower-module chooses the plan of --model", "add --model MODEL_SPEC, or drop it")
    if args.tower_module == "identity":
        raise CostModelError("--tower-module identity compresses nothing (the sptt row prices identity towers)",
                             "name a compressing Tower Module (linear, dot, cross, wukong), or drop it")
    if args.model:
        return [1.0]
    if args.features < 1 or args.dim < 1 or args.batch < 1:
        raise CostModelError("--features, --dim and --batch must be positive", "e.g. --features 26 --dim 128")
    if args.features > MAX_COST_FEATURES:  # before building a list of that length
        raise CostModelError(f"--features must be at most {MAX_COST_FEATURES:,}, got {args.features:,}",
                             "give the number of sparse features of a real model, e.g. --features 26")
    return [float(args.dim)] * args.features


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
    widths = _feature_widths(args)
    # the compression range `transform` accepts is checked with every other input by topo.cost_limits
    fields = dict(compressions=tuple(args.compression),
                  strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
                  host_split=args.host_split, bytes_per_element=args.bytes_per_element, params=_params(args.param))
    config = Config(feature_widths=tuple(float(w) for w in widths), batch_per_rank=args.batch,
                    ids_per_sample=tuple([args.pooling] * len(widths)), **fields)  # every input checked here
    gpus = _gpus(args.sweep) if args.sweep else [topo.world_size]
    if args.model:
        compare(topo, config)  # a topology the cost model cannot price fails here, before the model is planned
    with ProgressBar("plans", len(gpus) * (1 + len(fields["compressions"]) * ("sptt_tm" in fields["strategies"])),
                     enabled=None if args.format == "table" and args.model else False, leave=False) as bar:
        config_for = model_configs(args, fields, bar) if args.model else None
        if args.sweep:
            result = sweep(topo, gpus, config, config_for)
            config = config_for(topo.with_world_size(gpus[0])) if config_for else config  # what JSON records
        else:
            config = config_for(topo) if config_for else config
            rows = compare(topo, config)
    if args.sweep:
        stdout.write(report_json(topo, config, result, swept=True) if args.format == "json"
                     else format_sweep(topo, result))
        if args.plot:
            _plot(result, args.plot, topo, config, getattr(args, "model", None), plt)
            if args.format == "table":
                stdout.write(f"wrote {args.plot}\n")
        return 0
    stdout.write(report_json(topo, config, rows) if args.format == "json"
                 else format_compare(topo, rows, terminal_width()))
    if args.format == "table":
        stdout.write(_step_band(topo, config))
    if args.format != "json" and args.model:
        stdout.write(f"\nsptt rows: the towers `transform` plans for {args.model} on {topo.name or 'topology'} {topo} "
                     "(identity, and the "
                     f"{args.tower_module or 'linear'} Tower Module at each compression); `dmt-compile dump` prints "
                     "the same speedup for the same Tower Module and compression.\n")
    return 0


def _step_band(topo: Topology, config: Config) -> str:
    """The fitted step model's embedding-exchange time with a band over its unfitted network
    parameters (nothing fitted here: compute terms 0, alpha, g, n_half, eta, kappa over their ranges)."""
    from dmt_compile.topo.cost_fit import RANGES, Candidate, predict_step, speedup_band

    if topo.inter_bw is None or topo.num_hosts < 2:
        return ""
    loads = tower_loads(topo, config)
    w, ids = loads["tower_in_widths"], loads["ids_per_sample"]
    cands = [("flat", Candidate("flat", (sum(config.feature_widths),), (sum(config.ids_per_sample or ()),), None,
                                config.bytes_per_element)),
             ("sptt", Candidate("sptt", tuple(w), tuple(ids), None, config.bytes_per_element))]
    cands += [(strategy_label("sptt_tm", c), Candidate("sptt_tm", tuple(w), tuple(ids),
                                             tuple(config.towers.out_for(c) if config.towers else [a / c for a in w]),
                                             config.bytes_per_element))
              for c in (config.compressions if "sptt_tm" in config.strategies else ())]
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
