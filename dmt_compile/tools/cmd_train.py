"""CLI for the quality harness and the feature graph: `dmt-compile train`, `dmt-compile feature-graph`.

`register(subparsers)` registers both; each handler is `run_x(args, stdout) -> int`.
Helper for the `plan` subcommand: `write_feature_graph(...)`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
from dataclasses import asdict
from typing import IO

from dmt_compile.tools.option_args import add_option_args

__all__ = ["register", "run_train", "run_feature_graph", "write_feature_graph",
           "DATA_DEFAULTS", "add_train_arguments"]

log = logging.getLogger(__name__)
TOWER_MODULE_CHOICES = ("identity", "linear", "dot", "cross", "wukong")
# per data set: generator/loader sizes and the default topology / tower count
DATA_DEFAULTS = {
    "synthetic": {"topology": "4x2", "towers": 4, "dim": 16, "test_fraction": 0.25},
    "adult": {"topology": "2x4", "towers": 2, "dim": 8, "test_fraction": 0.2},
}


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` options (shared with examples/train.py)."""
    p.add_argument("--data", choices=tuple(DATA_DEFAULTS), default="synthetic", help="synthetic (default) or adult")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--tower-modules", default=",".join(TOWER_MODULE_CHOICES),
                   help="comma-separated Tower Modules (default: all five)")
    p.add_argument("--partitioners", default="learned,random", help="DMT partitioners to train (default learned,random)")
    add_option_args(p, ["compression"], defaults={"compression": (4.0, "4")})
    p.add_argument("--feeds", default="auto",
                   help="comma-separated feeds of the compressing TMs: auto (default), hierarchical, decoder, direct")
    p.add_argument("--epochs", type=int, default=8, help="total epochs per variant, pre-training included")
    p.add_argument("--pretrain-epochs", type=int, default=2, help="flat epochs before the transform")
    p.add_argument("--batch-size", type=int, default=512, help="samples per training step (default 512)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    p.add_argument("--dim", type=int, default=None, help="embedding dim (default: 16 synthetic, 8 adult)")
    p.add_argument("--samples", type=int, default=80_000, help="synthetic rows (default 80000)")
    p.add_argument("--topology", default=None, help="default: 4x2 synthetic, 2x4 adult")
    add_option_args(p, ["num_towers"], defaults={"num_towers": (None, "4 synthetic (one per planted group), 2 adult")})
    p.add_argument("--calibration", type=int, default=8, help="calibration batches for the learned partitioner")
    p.add_argument("--no-baselines", action="store_true", help="skip the partitioner baseline table")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", default=None, help="also write every run as JSON to this file")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")


def register(subparsers) -> None:
    """Register `train` and `feature-graph` on a `dmt-compile` subparsers object."""
    train = subparsers.add_parser("train", help="train flat vs DMT variants and report AUC / log-loss")
    add_train_arguments(train)
    train.set_defaults(func=run_train)
    graph = subparsers.add_parser("feature-graph", help="DOT/PNG of the feature affinity graph coloured by tower")
    graph.add_argument("model", metavar="MODEL_SPEC", help="path/to/file.py:factory or package.module:factory")
    graph.add_argument("--topology", default="2x4", help="hosts x GPUs per host, or a preset (default 2x4)")
    add_option_args(graph, ["num_towers", "partitioner"], defaults={"partitioner": ("learned", "learned")})
    graph.add_argument("--calibration", type=int, default=4, help="calibration batches from the factory (seeds 1..N)")
    graph.add_argument("--affinity", default="covariation", help="covariation | interaction | both")
    graph.add_argument("--out", default=None, help="write DOT here (and a PNG next to it when graphviz `dot` exists)")
    graph.set_defaults(func=run_feature_graph)


def _load_data(args):
    from dmt_compile.tools.applications import load_application

    quality = load_application("quality", "train")
    load_adult, make_planted = quality.load_adult, quality.make_planted

    defaults = DATA_DEFAULTS[args.data]
    data = make_planted(args.samples, seed=0, cardinality=20, rank=8, clusters=5) if args.data == "synthetic" \
        else load_adult()
    train, test = data.split(defaults["test_fraction"], seed=0)
    return data, train, test


def run_train(args, stdout: IO[str]) -> int:
    """Train flat and DMT variants over seeds; print the Markdown tables (and JSON with --json)."""
    import torch

    from dmt_compile.errors import TowerModuleError
    from dmt_compile.ir.feed import FEEDS
    from dmt_compile.tools.applications import load_application

    quality = load_application("quality", "train")
    TrainConfig, run_experiment, summarize = quality.TrainConfig, quality.run_experiment, quality.summarize
    baselines_table, plan_baselines, results_table = quality.baselines_table, quality.plan_baselines, quality.results_table

    if args.epochs <= args.pretrain_epochs:
        from dmt_compile.errors import InputError

        raise InputError(
            f"--epochs {args.epochs} leaves no DMT epoch after --pretrain-epochs {args.pretrain_epochs} "
            "(epochs count the flat pre-training too), so every DMT variant would train zero steps",
            f"pass --epochs {args.pretrain_epochs + 1} or more, or fewer --pretrain-epochs")
    if args.threads:
        torch.set_num_threads(args.threads)
    defaults = DATA_DEFAULTS[args.data]
    data, train, test = _load_data(args)
    cfg = TrainConfig(
        epochs=args.epochs, pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.lr,
        dim=args.dim or defaults["dim"], topology=args.topology or defaults["topology"],
        num_towers=args.num_towers or defaults["towers"], compression=args.compression,
        calibration=args.calibration, progress=not args.no_progress,
    )
    seeds = [int(s) for s in _csv(args.seeds)]
    feeds = _csv(args.feeds) or ["auto"]
    unknown = [f for f in feeds if f not in FEEDS]
    if unknown:
        raise TowerModuleError(f"unknown feed {unknown[0]!r} in --feeds", "choose from: " + ", ".join(FEEDS))
    variants = [(p, tm, f) for tm in _csv(args.tower_modules) for f in (["auto"] if tm == "identity" else feeds)
                for p in _csv(args.partitioners)]
    stdout.write(f"## {data.name}: {len(train)} train / {len(test)} test rows, {len(data.feature_names)} sparse "
                 f"features, {cfg.num_towers} towers on {cfg.topology}, c = {cfg.compression:g}, "
                 f"{cfg.epochs} epochs ({cfg.pretrain_epochs} flat pre-training), seeds {seeds}\n\n")
    if data.groups:
        stdout.write("planted groups: " + "; ".join(", ".join(g) for g in data.groups) + "\n\n")
    baselines = []
    if not args.no_baselines:
        for s in seeds:
            baselines += plan_baselines(train, s, cfg)
        stdout.write("### Partitioners side by side (plans after pre-training)\n\n" + baselines_table(baselines) + "\n")
    results = run_experiment(train, test, seeds, cfg, variants)
    stdout.write("### Flat vs DMT\n\n" + results_table(summarize(results)))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": asdict(cfg), "data": data.name, "seeds": seeds,
                       "runs": [asdict(r) for r in results], "baselines": baselines}, fh, indent=1, default=str)
    return 0


def write_feature_graph(dot_text: str, path: str) -> list[str]:
    """Write `path` (DOT) and, when graphviz's `dot` is on PATH, `path` with .png; the files written."""
    with open(path, "w") as fh:
        fh.write(dot_text)
    written = [path]
    exe = shutil.which("dot")
    if exe:
        png = os.path.splitext(path)[0] + ".png"
        subprocess.run([exe, "-Tpng", path, "-o", png], check=True)
        written.append(png)
    else:
        log.info("graphviz `dot` not found: wrote DOT only (render with `dot -Tpng %s -o graph.png`)", path)
    return written


def run_feature_graph(args, stdout: IO[str]) -> int:
    """Plan MODEL_SPEC with calibration batches and print (or write) the feature graph."""
    import torch

    from dmt_compile.api import transform
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.partition.affinity import AffinityRecorder, feature_graph_dot
    from dmt_compile.tools.transform_args import calibration_from_spec

    model, inputs = load_model_spec(args.model)
    torch.manual_seed(0)
    recorder = AffinityRecorder(args.affinity)
    dmt = transform(model, args.topology, inputs, num_towers=args.num_towers, partitioner=args.partitioner,
                    calibration_batches=calibration_from_spec(args.model, args.calibration), callback=recorder)
    text = feature_graph_dot(dmt.plan, recorder.affinity)
    stdout.write(str(dmt.plan) + "\n")
    if args.out:
        for path in write_feature_graph(text, args.out):
            stdout.write(f"wrote {path}\n")
    else:
        stdout.write(text)
    return 0
