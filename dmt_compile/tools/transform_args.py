"""The options every transforming command shares, and how they become a `transform` call."""
from __future__ import annotations

import argparse
import os
import tempfile

from dmt_compile.tools.option_args import add_option_args, option_values, options_from_args

__all__ = ["add_transform_args", "transform_from_args", "calibration_from_spec", "check_transform_args",
           "writable_dir", "writable_file"]


def add_transform_args(p: argparse.ArgumentParser) -> None:
    """MODEL_SPEC, the topology, every pass option (`option_args`), and the capture, wire and calibration flags."""
    p.add_argument("model", metavar="MODEL_SPEC", help="path/to/file.py:factory or package.module:factory")
    p.add_argument("--topology", default="2x4", help="NxL (hosts x ranks per host), a preset like h100:64, ...")
    add_option_args(p)
    p.add_argument("--wire-dtype", default=None, choices=("fp32", "fp16", "bf16", "fp8_e4m3"),
                   help="format of the embedding exchanges once distributed, forward and gradients "
                        "(default: the embeddings' own dtype)")
    p.add_argument("--calibration", type=int, default=0, metavar="N",
                   help="calibration batches from the factory for the learned partitioner")
    p.add_argument("--capture", default="auto", choices=("auto", "symbolic", "specialize", "specialize+leaf", "export",
                                                         "export-static"),
                   help="capture path (auto: the first of them that reproduces the model)")


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


def check_transform_args(args: argparse.Namespace) -> None:
    """Refuse option values before any work: the passes check their options (typed errors naming the flag)."""
    from dmt_compile.errors import InputError

    calibration = getattr(args, "calibration", 0)
    if calibration < 0:
        raise InputError(f"--calibration must be 0 or a positive number of batches, got {calibration}",
                         "e.g. --partitioner learned --calibration 8 (0: the example inputs only)")
    options_from_args(args)


def _output_error(path: str, option: str, exc: OSError | str):
    from dmt_compile.errors import OutputError

    why = exc if isinstance(exc, str) else (exc.strerror or type(exc).__name__)
    return OutputError(f"{option} {path!r} cannot be written: {why}",
                       f"pass a {'folder' if option == '--dump-dir' else 'file'} path you can write, e.g. in /tmp")


def writable_dir(path: str, option: str) -> str:
    """Create `path` if needed and prove a file can be written in it, before any work starts."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".dmt_write_check_"):
            pass
    except OSError as exc:
        raise _output_error(path, option, exc) from None
    return path


def writable_file(path: str, option: str) -> str:
    """Prove `path` can be written (its folder exists and takes a file), before any work starts."""
    if os.path.isdir(path):
        raise _output_error(path, option, "it is a folder")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise _output_error(path, option, f"folder {folder!r} does not exist")
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        raise _output_error(path, option, exc) from None
    if not existed:
        os.remove(path)
    return path


def transform_from_args(args: argparse.Namespace, callback=None, **extra):
    """Load MODEL_SPEC and transform it as the command line says (`extra`: more `transform` keywords)."""
    import torch

    from dmt_compile.api import transform
    from dmt_compile.capture.model_spec import load_model_spec

    check_transform_args(args)
    model, inputs = load_model_spec(args.model)
    calibration = calibration_from_spec(args.model, args.calibration) if getattr(args, "calibration", 0) else None
    options = options_from_args(args)
    torch.manual_seed(options.seed)
    return transform(model, args.topology, inputs, callback=callback, calibration_batches=calibration,
                     capture_paths=getattr(args, "capture", "auto"),
                     **{"wire_dtype": getattr(args, "wire_dtype", None), **option_values(args), **extra})
