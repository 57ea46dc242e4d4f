"""`dmt-compile plan`: print only the tower plan (and optionally the feature-affinity graph).

`--strategy auto` searches the candidates the model admits and prints the candidate table with
the plan (`dmt_compile.strategy`); `--calibration-data` measures the shortlist's quality first.
"""
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
    p.add_argument("--strategy", choices=("manual", "auto"), default="manual",
                   help="auto: choose flat / identity / Tower Module x compression x feed for this topology "
                        "(--tower-module, --compression, --feed given pin them) and print the candidate table")
    p.add_argument("--batch", type=int, default=None, metavar="B",
                   help="--strategy auto: training batch per rank the prediction prices (default 1024)")
    p.add_argument("--quality-budget", type=float, default=0.002, metavar="DAUC",
                   help="--strategy auto: largest AUC loss vs flat a candidate may have (default 0.002)")
    p.add_argument("--calibration-data", default=None, metavar="PATH|synthetic|adult",
                   help="--strategy auto: measure the shortlist's quality by a short paired training against "
                        "flat, on a torch.save'd list of (inputs, labels) batches for this model, or on the "
                        "quality harness's data sets (synthetic, adult, synthetic,adult)")
    p.add_argument("--cost-params", default=None, metavar="P.json",
                   help="--strategy auto: price candidates with these fitted step-model parameters (written by "
                        "`dmt-compile cost --fit A.json --held-out B.json --save P.json`; default: the shipped set "
                        "where it applies, else the analytic cost model)")
    p.set_defaults(func=run_plan)


def _check_auto_args(args) -> None:
    from dmt_compile.errors import InputError

    if args.strategy != "auto":
        given = [o for o, v in (("--batch", args.batch), ("--calibration-data", args.calibration_data),
                                ("--cost-params", getattr(args, "cost_params", None))) if v is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply to --strategy auto", "add --strategy auto")
        return
    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch must be a positive batch per rank, got {args.batch}", "e.g. --batch 1024")
    if args.quality_budget < 0:
        raise InputError(f"--quality-budget must be >= 0, got {args.quality_budget}", "e.g. --quality-budget 0.002")


#: the quality harness's data sets (benchmarks/quality/auto_check.py)
DATA_SETS = ("synthetic", "adult")


def _quality_source(value: str) -> dict:
    """`transform` keywords measuring quality from `--calibration-data`."""
    import os

    from dmt_compile.errors import InputError

    from dmt_compile.tools.applications import load_application

    names = [v.strip() for v in value.split(",")]
    if all(n in DATA_SETS for n in names):
        harness = load_application("quality", "plan --calibration-data")
        HarnessQualityCheck = load_application("quality.auto_check", "plan --calibration-data").HarnessQualityCheck
        if "adult" in names and not harness.adult_available():
            raise InputError("the Adult data set is not available (set DMT_ADULT_PATH)",
                             "use --calibration-data synthetic, or a file of your own batches")
        return {"quality_check": HarnessQualityCheck(data_sets=tuple(names))}
    if not os.path.isfile(value):
        raise InputError(f"--calibration-data {value!r} is neither a file nor one of {', '.join(DATA_SETS)}",
                         "pass a torch.save'd list of (inputs, labels) batches, or synthetic / adult")
    import torch

    try:
        batches = torch.load(value, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"--calibration-data {value!r} cannot be read by torch.load: {exc}",
                         "write it with torch.save([(inputs, labels), ...], PATH)") from None
    if not isinstance(batches, (list, tuple)):
        raise InputError(f"--calibration-data {value!r} holds a {type(batches).__name__}, not a list of batches",
                         "write it with torch.save([(inputs, labels), ...], PATH)")
    return {"quality_data": list(batches)}


def run_plan(args, stdout: IO[str]) -> int:
    from dmt_compile.partition.affinity import AffinityRecorder, feature_graph_dot
    from dmt_compile.tools.cmd_train import write_feature_graph

    check_transform_args(args)
    _check_auto_args(args)
    if args.graph:
        writable_file(args.graph, "--graph")
    if args.affinity_png:
        from dmt_compile.tools.pictures import require_matplotlib

        require_matplotlib("--affinity-png")
        writable_file(args.affinity_png, "--affinity-png")
    extra = {}
    if args.strategy == "auto":
        extra = dict(strategy="auto", batch_per_rank=args.batch, quality_budget=args.quality_budget)
        if args.calibration_data:
            extra.update(_quality_source(args.calibration_data))
        if getattr(args, "cost_params", None):
            extra["predictor"] = args.cost_params  # a fitted parameter file (strategy.resolve_predictor loads it)
    recorder = AffinityRecorder() if args.graph or args.affinity_png else None
    dmt = transform_from_args(args, recorder, **extra)
    from dmt_compile.printing import terminal_width

    stdout.write((dmt.plan.to_json() if args.format == "json" else dmt.plan.format(terminal_width())) + "\n")
    if args.format != "json":
        from dmt_compile.tools.flops import flops_line

        stdout.write(flops_line(args.model, dmt, terminal_width()))
    if args.graph:
        written = write_feature_graph(feature_graph_dot(dmt.plan, recorder.affinity), args.graph)
        stdout.write(f"feature graph: {written}\n")
    if args.affinity_png:
        from dmt_compile.tools.pictures import affinity_matrix_png

        stdout.write(f"affinity matrix: {affinity_matrix_png(dmt.plan, recorder.affinity, args.affinity_png)}\n")
    return 0
