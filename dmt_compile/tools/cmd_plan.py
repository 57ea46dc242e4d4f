"""`dmt-compile plan`: print only the tower plan (and optionally the feature-affinity graph)."""
from __future__ import annotations

from typing import IO

from dmt_compile.tools.transform_args import (add_transform_args, check_transform_args, transform_from_args,
                                               writable_file)

__all__ = ["register", "run_plan"]


def register(sub) -> None:
    p = sub.add_parser("plan", help="print only the tower plan")
    add_transform_args(p)
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default: the plan in words, one line per tower) or json (the plan as data)")
    p.add_argument("--graph", default=None, metavar="PATH",
                   help="write the feature-affinity graph coloured by tower as DOT (and PNG with graphviz)")
    p.add_argument("--affinity-png", default=None, metavar="FILE",
                   help="draw the feature-affinity matrix ordered by tower, with tower frames and a colour "
                        "bar, to FILE (needs matplotlib)")
    p.set_defaults(func=run_plan)


def run_plan(args, stdout: IO[str]) -> int:
    from dmt_compile.partition.affinity import AffinityRecorder, feature_graph_dot
    from dmt_compile.tools.cmd_train import write_feature_graph

    check_transform_args(args)
    if args.graph:
        writable_file(args.graph, "--graph")
    if args.affinity_png:
        from dmt_compile.tools.pictures import require_matplotlib

        require_matplotlib("--affinity-png")
        writable_file(args.affinity_png, "--affinity-png")
    recorder = AffinityRecorder() if args.graph or args.affinity_png else None
    dmt = transform_from_args(args, recorder)
    from dmt_compile.printing import terminal_width

    stdout.write((dmt.plan.to_json() if args.format == "json" else dmt.plan.format(terminal_width())) + "\n")
    if args.format != "json":
        from dmt_compile.tools.flops import flops_line

        stdout.write(flops_line(args.model, dmt))
    if args.graph:
        written = write_feature_graph(feature_graph_dot(dmt.plan, recorder.affinity), args.graph)
        stdout.write(f"feature graph: {written}\n")
    if args.affinity_png:
        from dmt_compile.tools.pictures import affinity_matrix_png

        stdout.write(f"affinity matrix: {affinity_matrix_png(dmt.plan, recorder.affinity, args.affinity_png)}\n")
    return 0
