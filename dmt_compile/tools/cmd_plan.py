"""`dmt-compile plan`: print only the tower plan (and optionally the feature-affinity graph)."""
from __future__ import annotations

from typing import IO

from dmt_compile.tools.transform_args import (add_transform_args, check_transform_args, transform_from_args,
                                               writable_file)

__all__ = ["register", "run_plan"]


def register(sub) -> None:
    p = sub.add_parser("plan", help="print only the tower plan")
    add_transform_args(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--graph", default=None, metavar="PATH",
                   help="write the feature-affinity graph coloured by tower as DOT (and PNG with graphviz)")
    p.set_defaults(func=run_plan)


def run_plan(args, stdout: IO[str]) -> int:
    from dmt_compile.partition.affinity import AffinityRecorder, feature_graph_dot
    from dmt_compile.tools.cmd_train import write_feature_graph

    check_transform_args(args)
    if args.graph:
        writable_file(args.graph, "--graph")
    recorder = AffinityRecorder() if args.graph else None
    dmt = transform_from_args(args, recorder)
    stdout.write((dmt.plan.to_json() if args.format == "json" else str(dmt.plan)) + "\n")
    if args.format != "json":
        from dmt_compile.tools.flops import flops_line

        stdout.write(flops_line(args.model, dmt))
    if args.graph:
        written = write_feature_graph(feature_graph_dot(dmt.plan, recorder.affinity), args.graph)
        stdout.write(f"feature graph: {written}\n")
    return 0
