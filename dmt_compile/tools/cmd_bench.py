"""`dmt-compile bench`: the emulated multi-host benchmark (namespaces as hosts, tc-shaped NICs)."""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import IO

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


def register(subparsers: argparse._SubParsersAction) -> None:
    from dmt_compile.tools.bench.model import MODEL_SPEC

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
                      help="choose the NIC rate so that flat spends this share of its step on the wire "
                           "(measured: flat runs once at a fast rate first), e.g. 0.84 or 0.275")
    p.add_argument("--inter-delay", default="0", help="extra delay per NIC egress (netem; e.g. 100us; default 0)")
    p.add_argument("--model", default=MODEL_SPEC, help=f"MODEL_SPEC (default {MODEL_SPEC})")
    p.add_argument("--batch-per-rank", type=int, default=1024, help="samples per rank per step (default 1024)")
    p.add_argument("--steps", type=int, default=10, help="measured steps per strategy (default 10; medians need >= 10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up steps per strategy (default 2)")
    p.add_argument("--compression", type=_compressions, default=(4.0, 16.0),
                   help="SPTT+TM(linear) compressions to run, comma-separated (default 4,16)")
    p.add_argument("--feed", default="auto", help="Tower-Module feed for sptt_tm: auto|direct|decoder|hierarchical")
    p.add_argument("--tower-module", default="linear", help="compressing Tower Module of sptt_tm (default linear)")
    p.add_argument("--strategies", default="flat,torchrec_tw,sptt,sptt_tm",
                   help="subset to run (default flat,torchrec_tw,sptt,sptt_tm)")
    p.add_argument("--no-torchrec", action="store_true", help="skip the TorchRec DMP baseline")
    p.add_argument("--dense-sync", choices=("hierarchical", "flat"), default="hierarchical",
                   help="all-reduce of data-parallel gradients (default hierarchical: reduce-scatter in host, "
                        "all-reduce across, all-gather in)")
    p.add_argument("--all-to-all", choices=("auto", "collective"), default="auto",
                   help="auto: full-duplex point-to-point on gloo; collective: gloo all_to_all_single (half duplex)")
    p.add_argument("--pipeline", action="store_true",
                   help="SPTT: exchange the next step's ids while this step computes (IdsPipeline)")
    p.add_argument("--ids-per-feature", type=_positive_int, default=1, metavar="N",
                   help="bench model: N ids per sample and feature, sum-pooled (default 1: one-hot)")
    p.add_argument("--zipf", type=float, default=0.0, metavar="S",
                   help="bench model: ids drawn with P(rank k) ~ 1/(k+1)^S (default 0: uniform)")
    p.add_argument("--no-pin", action="store_true", help="do not pin ranks to cores")
    p.add_argument("--no-interleave", action="store_true", help="run strategies one after another")
    p.add_argument("--no-nic-trace", action="store_true", help="do not sample host 0's NIC")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run before it is killed")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--plot", metavar="PNG", nargs="?", const="bench_emulated.png", default=None,
                   help="also write a bar chart (default file bench_emulated.png)")
    p.set_defaults(func=run_bench)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_bench(args: argparse.Namespace, stdout: IO[str] | None = None) -> int:
    from dmt_compile.errors import DmtError
    from dmt_compile.tools.bench.netns import NetnsUnavailable, parse_rate, parse_time
    from dmt_compile.tools.bench.report import render_json, render_plot, render_table
    from dmt_compile.tools.bench.runner import BenchConfig, run_benchmark

    out = stdout or sys.stdout
    if args.zipf < 0:
        print(f"error: --zipf must be >= 0, got {args.zipf} (0 draws ids uniformly)", file=out)
        return 1
    # the bench model reads these (every rank inherits the environment)
    os.environ["DMT_BENCH_IDS_PER_FEATURE"], os.environ["DMT_BENCH_ZIPF"] = str(args.ids_per_feature), str(args.zipf)
    n, l = args.emulate
    try:
        cfg = BenchConfig(num_hosts=n, local_size=l,
                          inter_bw_bits=parse_rate(args.inter_bw) if args.inter_bw else None,
                          wire_share=args.wire_share, inter_delay_s=parse_time(args.inter_delay), spec=args.model,
                          per_rank_batch=args.batch_per_rank, steps=args.steps, warmup=args.warmup,
                          compressions=tuple(args.compression), torchrec=not args.no_torchrec,
                          timeout_s=args.timeout, feed=args.feed, tower_module=args.tower_module, dense_sync=args.dense_sync,
                          all_to_all=args.all_to_all, pin=not args.no_pin, interleave=not args.no_interleave,
                          nic_trace=not args.no_nic_trace, pipeline=args.pipeline,
                          strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()))
        report = run_benchmark(cfg, log=lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True))
    except NetnsUnavailable as exc:
        print(f"error: {exc}", file=out)
        return 2
    except DmtError as exc:
        print(f"error: {exc}", file=out)
        return 1
    if args.plot:
        try:
            report["plot"] = render_plot(report, args.plot)
        except ImportError as exc:
            report["plot"] = f"not written: {exc}"
    out.write((render_json(report) if args.format == "json" else render_table(report)) + "\n")
    return 0 if report["teardown"]["clean"] else 1
