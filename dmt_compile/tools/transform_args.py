"""The options every transforming command shares, and how they become a `transform` call."""
from __future__ import annotations

import argparse

from dmt_compile.ir.feed import FEEDS

__all__ = ["add_transform_args", "transform_from_args", "calibration_from_spec"]


def add_transform_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL_SPEC", help="path/to/file.py:factory or package.module:factory")
    p.add_argument("--topology", default="2x4", help="NxL (hosts x ranks per host), a preset like h100:64, ...")
    p.add_argument("--towers", type=int, default=None, help="number of towers (default: one per host)")
    p.add_argument("--tower-module", default="identity", help="identity | linear | dot | cross | wukong")
    p.add_argument("--compression", type=float, default=None, help="compression ratio c of the tower module")
    p.add_argument("--feed", default="auto", choices=FEEDS,
                   help="how compressed towers reach the interaction (auto: direct, else hierarchical for "
                        "interacting TMs, else decoder)")
    p.add_argument("--seed", type=int, default=0, help="torch seed for new Tower Module weights")
    p.add_argument("--partitioner", default="balanced", help="balanced | learned | random | contiguous")
    p.add_argument("--calibration", type=int, default=0, metavar="N",
                   help="calibration batches from the factory for the learned partitioner")


def calibration_from_spec(spec: str, n: int) -> list[tuple]:
    """`n` calibration batches from a MODEL_SPEC factory called with `seed=1..n` (example inputs otherwise)."""
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.errors import ModelSpecError

    batches = []
    for i in range(n):
        try:
            _, inputs = load_model_spec(spec, seed=i + 1)
        except ModelSpecError:
            _, inputs = load_model_spec(spec)
        batches.append(inputs)
    return batches


def transform_from_args(args: argparse.Namespace, callback=None):
    """Load MODEL_SPEC and transform it as the command line says."""
    import torch

    from dmt_compile.api import transform
    from dmt_compile.capture.model_spec import load_model_spec

    model, inputs = load_model_spec(args.model)
    calibration = calibration_from_spec(args.model, args.calibration) if getattr(args, "calibration", 0) else None
    torch.manual_seed(args.seed)
    return transform(model, args.topology, inputs, num_towers=args.towers, tower_module=args.tower_module,
                     compression=args.compression, feed=args.feed, callback=callback,
                     partitioner=args.partitioner, calibration_batches=calibration, seed=args.seed)
