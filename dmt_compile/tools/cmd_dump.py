"""`dmt-compile dump`: transform a model and print the plan, the predicted cost and the rewritten graph.

Default: a short summary (the plan, what crosses hosts, what was captured and rewritten, notes and
the predicted cost) within 120 columns; `--format full` (or `-v`) adds the node table with the
getitem plumbing folded and the added modules; `--format dot` is a picture (`--png FILE` renders
it when graphviz's `dot` is installed).
"""
from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING

from dmt_compile.passes import PASSES
from dmt_compile.tools.transform_args import (add_transform_args, check_transform_args, transform_from_args,
                                               writable_dir)

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["register", "run_dump"]

FORMATS = ("summary", "full", "table", "code", "dot", "json")


def register(sub) -> None:
    p = sub.add_parser("dump", help="transform a model and print the rewritten graph and plan")
    add_transform_args(p)
    p.add_argument("--format", choices=FORMATS, default="summary",
                   help="summary (default), full (= table: + node table, added modules), code, dot, json")
    p.add_argument("--full", dest="full", action="store_true", help="same as --format full")
    p.add_argument("--png", metavar="FILE", default=None,
                   help="also render the DOT picture to FILE (needs graphviz's `dot` on PATH)")
    p.add_argument("--dump-dir", default=None, help="write the graph after every pass (NN_<pass>.txt)")
    p.add_argument("--rank", type=int, default=None,
                   help="print the program of this rank after lowering (collectives as named nodes)")
    p.add_argument("--passes", default=None, metavar="PIPELINE",
                   help="run only these passes, e.g. 'split-collections,detect,plan-towers{partitioner=learned}', "
                        "and print the graph after them (pass names: " + ", ".join(PASSES) + ")")
    p.set_defaults(func=run_dump)


def _pass_dumper(directory: str):
    from dmt_compile.errors import OutputError
    from dmt_compile.ir.plan import TowerPlan
    from dmt_compile.printing import format_graph

    os.makedirs(directory, exist_ok=True)

    def callback(index, name, gm, ctx):
        text = format_graph(gm)
        if ctx.has(TowerPlan):
            text = f"{ctx.get(TowerPlan)}\n\n{text}"
        path = os.path.join(directory, f"{index:02d}_{name}.txt")
        try:
            with open(path, "w") as fh:
                fh.write(text + "\n")
        except OSError as exc:
            raise OutputError(f"--dump-dir: cannot write {path!r}: {exc.strerror or exc}",
                              "free space or pass another --dump-dir") from None

    return callback


def _dot_program() -> str:
    import shutil

    from dmt_compile.errors import InputError

    exe = shutil.which("dot")
    if exe is None:
        raise InputError("--png needs graphviz's `dot` program, which is not on PATH",
                         "install graphviz (e.g. apt-get install graphviz), or write --format dot and render it "
                         "elsewhere")
    return exe


def _render_png(dot_text: str, path: str) -> None:
    import subprocess

    subprocess.run([_dot_program(), "-Tpng", "-Gdpi=110", "-o", path], input=dot_text, text=True, check=True)


def run_dump(args, stdout: IO[str]) -> int:
    if args.full:
        args.format = "full"
    if args.png and args.passes:
        from dmt_compile.errors import InputError

        raise InputError("--png draws a transformed model; --passes prints a partial pipeline", "drop one of them")
    if args.png:
        _dot_program()  # fail fast, before the transform
    check_transform_args(args)
    callback = _pass_dumper(writable_dir(args.dump_dir, "--dump-dir")) if args.dump_dir else None
    if args.passes:
        stdout.write(_run_pipeline(args, callback))
        return 0
    dmt = transform_from_args(args, callback)
    if args.rank is not None:
        stdout.write(_rank_program(dmt, args.rank, args.format))
        if args.png:
            _render_png(_rank_program(dmt, args.rank, "dot"), args.png)
        return 0
    from dmt_compile.printing import terminal_width

    stdout.write(dmt.dump(args.format, terminal_width()))
    if args.format == "summary":
        from dmt_compile.tools.flops import flops_line

        stdout.write(flops_line(args.model, dmt, terminal_width()))
    if args.png:
        _render_png(dmt.dump("dot"), args.png)
        if args.format != "json":
            stdout.write(f"wrote {args.png}\n")
    return 0


def _run_pipeline(args, callback) -> str:
    """Capture MODEL_SPEC, run the `--passes` pipeline, and print the graph and the analyses it produced."""
    import torch

    from dmt_compile.api import run_passes
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.ir.plan import TowerPlan
    from dmt_compile.passes import format_pipeline, parse_pipeline
    from dmt_compile.printing import format_compact
    from dmt_compile.tools.option_args import options_from_args

    passes = parse_pipeline(args.passes)
    model, inputs = load_model_spec(args.model)
    torch.manual_seed(options_from_args(args).seed)
    gm, ctx, report = run_passes(model, args.topology, inputs, passes, callback=callback)
    parts = [f"pipeline: {format_pipeline(passes)}", str(report)]
    if ctx.has(TowerPlan):
        parts.append(str(ctx.get(TowerPlan)))
    parts.append(format_compact(gm))
    return "\n\n".join(parts) + "\n"


def _rank_program(dmt: DmtModel, rank: int, fmt: str) -> str:
    """The lowered per-rank graph, built offline (no process group is needed to lower)."""
    from dmt_compile.errors import RuntimeSetupError
    from dmt_compile.lowering.lower import RankLayout, lower_for_rank
    from dmt_compile.printing import format_graph, format_modules, to_dot
    from dmt_compile.printing.dot import summary_label

    topo = dmt.topology
    if not 0 <= rank < topo.world_size:
        raise RuntimeSetupError(f"rank {rank} is outside topology {topo} ({topo.world_size} ranks)",
                                f"pass --rank between 0 and {topo.world_size - 1}")
    host, local = topo.host_of(rank), topo.local_of(rank)
    layout = RankLayout(topo.num_hosts, topo.local_size, host, local, None, None, "intra", local, topo.local_size)
    gm = lower_for_rank(dmt, layout).gm
    if fmt == "dot":
        return to_dot(gm, f"rank{rank}", f"rank {rank} (host {host}, local {local}): " + summary_label(dmt), dmt.plan)
    if fmt == "code":
        return "\n".join(line.rstrip() for line in gm.code.strip().splitlines()) + "\n"
    head = f"program of rank {rank} (host {host}, local {local}) on topology {topo}\n\n"
    return head + format_graph(gm, fold=True) + "\n\nmodules added:\n" + format_modules(gm) + "\n"
