"""`dmt-compile` / `python -m dmt_compile`: a thin argparse shell over the library."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import IO, Sequence

from dmt_compile.errors import DmtError

__all__ = ["get_args_parser", "main"]

FORMATS = ("table", "code", "dot", "json")


def _add_transform_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL_SPEC", help="path/to/file.py:factory or package.module:factory")
    p.add_argument("--topology", default="2x4", help="NxL (hosts x ranks per host), a preset like h100:64, ...")
    p.add_argument("--towers", type=int, default=None, help="number of towers (default: one per host)")
    p.add_argument("--tower-module", default="identity", help="identity | linear | ...")
    p.add_argument("--compression", type=float, default=None, help="compression ratio c of the tower module")
    p.add_argument("--feed", default="auto", choices=("auto", "direct", "decoder"),
                   help="how compressed towers reach the interaction")
    p.add_argument("--seed", type=int, default=0, help="torch seed for new Tower Module weights")
    p.add_argument("--partitioner", default="balanced", help="balanced | learned | random | contiguous")
    p.add_argument("--calibration", type=int, default=0, metavar="N",
                   help="calibration batches from the factory for the learned partitioner")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dmt_compile",
                                     description="Turn a flat recommendation model into a DMT model.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", required=True)
    dump = sub.add_parser("dump", help="transform a model and print the rewritten graph and plan")
    _add_transform_args(dump)
    dump.add_argument("--format", choices=FORMATS, default="table")
    dump.add_argument("--dump-dir", default=None, help="write the graph after every pass (NN_<pass>.txt)")
    dump.add_argument("--rank", type=int, default=None,
                      help="print the program of this rank after lowering (collectives as named nodes)")
    dump.set_defaults(func=run_dump)
    plan = sub.add_parser("plan", help="print only the tower plan")
    _add_transform_args(plan)
    plan.add_argument("--format", choices=("table", "json"), default="table")
    plan.add_argument("--graph", default=None, metavar="PATH",
                      help="write the feature-affinity graph coloured by tower as DOT (and PNG with graphviz)")
    plan.set_defaults(func=run_plan)
    try:
        from dmt_compile.tools.cmd_cost import add_subcommands
    except ImportError:  # pragma: no cover - topology CLI not installed
        pass
    else:
        add_subcommands(sub)
    for name in ("dmt_compile.tools.cmd_verify", "dmt_compile.tools.cmd_train", "dmt_compile.tools.cmd_bench"):
        try:
            module = __import__(name, fromlist=["add_subcommands"])
        except ImportError:
            continue
        module.add_subcommands(sub)
    return parser


def _transform(args, callback=None):
    import torch

    from dmt_compile.api import transform
    from dmt_compile.capture.model_spec import load_model_spec

    model, inputs = load_model_spec(args.model)
    calibration = None
    if getattr(args, "calibration", 0):
        from dmt_compile.tools.cmd_train import calibration_from_spec

        calibration = calibration_from_spec(args.model, args.calibration)
    torch.manual_seed(args.seed)
    return transform(model, args.topology, inputs, num_towers=args.towers, tower_module=args.tower_module,
                     compression=args.compression, feed=args.feed, callback=callback,
                     partitioner=getattr(args, "partitioner", "balanced"), calibration_batches=calibration,
                     seed=args.seed)


def run_dump(args, stdout: IO[str]) -> int:
    from dmt_compile.printing import format_graph

    callback = None
    if args.dump_dir:
        os.makedirs(args.dump_dir, exist_ok=True)

        def callback(index, name, gm, ctx):
            text = format_graph(gm)
            if ctx.plan is not None:
                text = f"{ctx.plan}\n\n{text}"
            with open(os.path.join(args.dump_dir, f"{index:02d}_{name}.txt"), "w") as fh:
                fh.write(text + "\n")

    dmt = _transform(args, callback)
    if args.rank is not None:
        stdout.write(_rank_program(dmt, args.rank, args.format))
        return 0
    stdout.write(dmt.dump(args.format))
    return 0


def _rank_program(dmt, rank: int, fmt: str) -> str:
    """The lowered per-rank graph, built offline (no process group is needed to lower)."""
    from dmt_compile.errors import RuntimeSetupError
    from dmt_compile.lowering.lower import RankLayout, lower_for_rank
    from dmt_compile.printing import format_graph, format_modules, to_dot

    topo = dmt.topology
    if not 0 <= rank < topo.world_size:
        raise RuntimeSetupError(f"rank {rank} is outside topology {topo} ({topo.world_size} ranks)",
                                f"pass --rank between 0 and {topo.world_size - 1}")
    host, local = topo.host_of(rank), topo.local_of(rank)
    layout = RankLayout(topo.num_hosts, topo.local_size, host, local, None, None, "intra", local, topo.local_size)
    gm = lower_for_rank(dmt, layout).gm
    if fmt == "dot":
        return to_dot(gm, f"rank{rank}")
    if fmt == "code":
        return "\n".join(line.rstrip() for line in gm.code.strip().splitlines()) + "\n"
    head = f"program of rank {rank} (host {host}, local {local}) on topology {topo}\n\n"
    return head + format_graph(gm) + "\n\nmodules added:\n" + format_modules(gm) + "\n"


def run_plan(args, stdout: IO[str]) -> int:
    recorder = None
    if args.graph:
        from dmt_compile.partition.affinity import AffinityRecorder

        recorder = AffinityRecorder()
    dmt = _transform(args, recorder)
    stdout.write((dmt.plan.to_json() if args.format == "json" else str(dmt.plan)) + "\n")
    if args.graph:
        from dmt_compile.tools.cmd_train import write_feature_graph
        from dmt_compile.partition.affinity import feature_graph_dot

        written = write_feature_graph(feature_graph_dot(dmt.plan, recorder.affinity), args.graph)
        stdout.write(f"feature graph: {written}\n")
    return 0


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None) -> int:
    stdout = stdout or sys.stdout
    parser = get_args_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args, stdout) or 0)
    except DmtError as exc:
        print(f"dmt-compile: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
