"""`dmt-compile bench`: the emulated multi-host benchmark (namespaces as hosts, tc-shaped NICs)."""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import IO

from dmt_compile.tools.option_args import add_option_args

__all__ = ["register", "run_bench", "parse_emulate"]


def parse_emulate(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+)\s*", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"--emulate wants HOSTSxRANKS such as 2x4, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def _compressions(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--compression wants numbers like 1,4,16, got {text!r}") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError("--compression values must be >= 1")
    return vals


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--wire-share wants a fraction such as 0.84, got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"--wire-share must be in (0, 1), got {v}")
    return v


def _wire_dtypes(text: str) -> tuple[str, ...]:
    vals = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [v for v in vals if v not in ("fp32", "fp16", "bf16", "fp8_e4m3")]
    if not vals or bad:
        raise argparse.ArgumentTypeError(f"--wire-dtype wants fp32,fp16,bf16,fp8_e4m3 (comma-separated), got {text!r}")
    return vals


def register(subparsers: argparse._SubParsersAction) -> None:
    """Long: one flat list of the bench's options with their help, read top to bottom."""
    p = subparsers.add_parser(
        "bench", help="emulated multi-host benchmark: flat vs TorchRec TW vs SPTT vs SPTT+TM (needs root)",
        description="Build N network namespaces (hosts) with L ranks each, shape every host NIC with tc, "
                    "and time every strategy's training steps interleaved in one run. Prints the "
                    "CPU-validity check, flat's wire share, each strategy's Amdahl bound and efficiency, "
                    "and host 0's NIC use (both directions). Always tears the network down.")
    p.add_argument("--emulate", type=parse_emulate, default=(2, 2), metavar="NxL",
                   help="hosts x ranks (default 2x2: with pinning, one core per two ranks on a 2-core box)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--inter-bw", default=None, help="per-host NIC rate, each direction (tc syntax, e.g. 1gbit)")
    rate.add_argument("--wire-share", type=_share, default=None,
                      help="choose the NIC rate so that flat's MEASURED exchange time is this share of its step "
                           "(flat runs twice first to find the rate), e.g. 0.8 or 0.3")
    p.add_argument("--inter-delay", default="0", help="extra delay per NIC egress (netem; e.g. 100us; default 0)")
    p.add_argument("--model", default=None, help="MODEL_SPEC (default benchmarks.emulated.model:factory)")
    p.add_argument("--batch-per-rank", type=int, default=1024, help="samples per rank per step (default 1024)")
    p.add_argument("--steps", type=int, default=30,
                   help="measured interleaved rounds (default 30: paired ratios with bootstrap 95%% CIs need >= 30)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps per strategy (default 2)")
    p.add_argument("--compression", type=_compressions, default=(4.0, 16.0),
                   help="SPTT+TM(linear) compressions to run, comma-separated (default 4,16)")
    add_option_args(p, ["feed", "tower_module"], defaults={"feed": ("auto", "auto; sptt_tm's feed"), "tower_module": (
        "linear", "linear; sptt_tm's compressing Tower Module")})
    p.add_argument("--strategies", default="flat,torchrec_tw,torchrec_rw,torchrec_twrw,sptt,sptt_tm",
                   help="subset of flat, torchrec_tw, torchrec_rw, torchrec_twrw, torchrec_towers, sptt, sptt_tm "
                        "(default all but torchrec_towers)")
    p.add_argument("--strategy", choices=("manual", "auto"), default="manual",
                   help="auto: also time strategy='auto''s choice for this topology and batch as row 'auto' "
                        "(reusing a run's samples when the choice is a run the bench times; see "
                        "benchmarks/emulated/auto_row.py)")
    p.add_argument("--cost-params", default=None, metavar="P.json",
                   help="--strategy auto: fitted step-model parameters to choose with (default: the shipped set)")
    p.add_argument("--wire-dtype", default="fp32", type=_wire_dtypes,
                   help="comma-separated wire formats of the embedding exchanges; every strategy runs once per "
                        "format (fp32, fp16, bf16, fp8_e4m3; TorchRec: its qcomm codecs). Default fp32")
    p.add_argument("--force", action="store_true",
                   help="run although the 1-minute load average is above half the cores (marked loaded_box)")
    p.add_argument("--no-bound", action="store_true",
                   help="skip the unthrottled pass that measures each run's non-wire time (no bound/efficiency)")
    p.add_argument("--sweep", default=None, metavar="KIND=V1,V2,...",
                   help="repeat the run over wire-share=0.1,...,0.9 | batch=256,...,4096 | hosts=2x2,4x1,4x2 "
                        "(JSON 'sweep' + 'crossover'; --plot draws speedup vs flat's measured exchange share)")
    p.add_argument("--quality", action="store_true",
                   help="also train every timed configuration and flat (3 seeds, paired) on synthetic data shaped "
                        "like the bench model and on Adult; ΔAUC / Δlog-loss go into each row")
    p.add_argument("--no-torchrec", action="store_true", help="skip the TorchRec DMP baseline")
    p.add_argument("--dense-sync", choices=("hierarchical", "hierarchical_async", "flat"), default="hierarchical",
                   help="all-reduce of data-parallel gradients (default hierarchical: reduce-scatter in host, "
                        "all-reduce across, all-gather in, after backward; hierarchical_async: the same stages "
                        "as a chain during backward)")
    p.add_argument("--all-to-all", choices=("auto", "collective"), default="auto",
                   help="auto: full-duplex point-to-point on gloo; collective: gloo all_to_all_single (half duplex)")
    p.add_argument("--pipeline", action="store_true",
                   help="SPTT: exchange the next step's ids while this step computes (IdsPipeline)")
    p.add_argument("--pipeline-chunks", type=_positive_int, default=1, metavar="K",
                   help="SPTT: run each step as K micro-batches whose exchanges overlap compute (default 1: off)")
    p.add_argument("--ids-per-feature", type=_positive_int, default=1, metavar="N",
                   help="bench model: N ids per sample and feature, sum-pooled (default 1: one-hot)")
    p.add_argument("--zipf", type=float, default=0.0, metavar="S",
                   help="bench model: ids drawn with P(rank k) ~ 1/(k+1)^S (default 0: uniform)")
    p.add_argument("--dedup-ids", action="store_true",
                   help="SPTT: each (host, table)'s distinct ids cross hosts once, expanded after the lookup")
    p.add_argument("--no-pin", action="store_true", help="do not pin ranks to cores")
    p.add_argument("--no-interleave", action="store_true", help="run strategies one after another")
    p.add_argument("--no-nic-trace", action="store_true", help="do not sample host 0's NIC")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run before it is killed")
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default: one row per strategy and compression) or json (every measurement)")
    p.add_argument("--plot", metavar="PNG", nargs="?", const="bench_emulated.png", default=None,
                   help="also write a bar chart (default file bench_emulated.png)")
    p.set_defaults(func=run_bench)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_bench(args: argparse.Namespace, stdout: IO[str] | None = None) -> int:
    from dmt_compile.tools.applications import load_application

    netns, report_mod = load_application("emulated.netns", "bench"), load_application("emulated.report", "bench")
    runner, sweep = load_application("emulated.runner", "bench"), load_application("emulated.sweep", "bench")
    NetnsUnavailable, parse_rate, parse_time = netns.NetnsUnavailable, netns.parse_rate, netns.parse_time
    render_json, render_plot, render_table = report_mod.render_json, report_mod.render_plot, report_mod.render_table
    render_sweep_plot, render_sweep_table = report_mod.render_sweep_plot, report_mod.render_sweep_table
    BenchConfig, run_benchmark = runner.BenchConfig, runner.run_benchmark
    parse_sweep, run_sweep = sweep.parse_sweep, sweep.run_sweep

    out = stdout or sys.stdout
    if args.zipf < 0:
        from dmt_compile.errors import InputError

        raise InputError(f"--zipf must be >= 0, got {args.zipf}", "pass --zipf 0 to draw ids uniformly, e.g. 1.1 for Zipf")
    # the bench model reads these (every rank inherits the environment)
    os.environ["DMT_BENCH_IDS_PER_FEATURE"], os.environ["DMT_BENCH_ZIPF"] = str(args.ids_per_feature), str(args.zipf)
    n, l = args.emulate
    try:
        cfg = BenchConfig(num_hosts=n, local_size=l,
                          inter_bw_bits=parse_rate(args.inter_bw) if args.inter_bw else None,
                          wire_share=args.wire_share, inter_delay_s=parse_time(args.inter_delay),
                          spec=args.model or load_application("emulated.model", "bench").MODEL_SPEC,
                          per_rank_batch=args.batch_per_rank, steps=args.steps, warmup=args.warmup,
                          compressions=tuple(args.compression), torchrec=not args.no_torchrec,
                          timeout_s=args.timeout, feed=args.feed, tower_module=args.tower_module, dense_sync=args.dense_sync,
                          all_to_all=args.all_to_all, pin=not args.no_pin, interleave=not args.no_interleave,
                          nic_trace=not args.no_nic_trace, pipeline=args.pipeline, wire_dtypes=args.wire_dtype,
                          pipeline_chunks=args.pipeline_chunks, dedup_ids=args.dedup_ids,
                          force=args.force, bound=not args.no_bound, auto=args.strategy == "auto",
                          cost_params=args.cost_params,
                          strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()))
        log = lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True)  # noqa: E731
        report = run_sweep(cfg, parse_sweep(args.sweep), log) if args.sweep else run_benchmark(cfg, log=log)
        if args.quality:
            load_application("emulated.quality", "bench").add_quality(report, cfg, log)
    except NetnsUnavailable as exc:  # errors go to stderr: stdout is the report (JSON with --format json)
        print(f"dmt-compile: error: {exc}", file=sys.stderr)
        return 2
    swept = "sweep" in report
    if args.plot:
        try:
            report["plot"] = (render_sweep_plot if swept else render_plot)(report, args.plot)
        except ImportError as exc:
            report["plot"] = f"not written: {exc}"
    table = render_sweep_table if swept else render_table
    out.write((render_json(report) if args.format == "json" else table(report)) + "\n")
    return 0 if report["teardown"]["clean"] else 1
