"""`dmt-compile verify`: distributed run on gloo vs the single-process reference."""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import IO

from tabulate import tabulate

from dmt_compile.errors import InputError
from dmt_compile.topo import Topology, as_topology
from dmt_compile.runtime.wire_codec import WIRE_TOLERANCE
from dmt_compile.tools.option_args import add_option_args

__all__ = ["register", "run_verify", "TOLERANCE"]

TOLERANCE = 1e-5



def register(sub) -> None:
    p = sub.add_parser("verify", help="run the transformed model on world-size processes and compare",
                       description="Transform MODEL_SPEC, run one training step of it on world-size local "
                                   "processes (gloo on CPU, NCCL on GPUs) and compare outputs, gradients and "
                                   "updated parameters with one process. Exit code 0 when they agree.")
    p.add_argument("model", metavar="MODEL_SPEC", help="path/to/file.py:factory or package.module:factory")
    p.add_argument("--topology", default="2x2", help="hosts x GPUs per host, one process each (default 2x2)")
    add_option_args(p, ["tower_module", "compression"],
                    defaults={"tower_module": ("identity", "identity, compared with the original model; a "
                                               "compressing one is compared with the single-process transformed "
                                               "model")})
    p.add_argument("--strategy", choices=("sptt", "flat"), default="sptt",
                   help="sptt (towers) or flat (table-wise over the world, one global AlltoAll)")
    p.add_argument("--optimizer", choices=("sgd", "adagrad"), default="sgd",
                   help="adagrad: Adagrad for the embedding tables, SGD for the rest")
    p.add_argument("--row-wise", choices=("auto", "never", "always"), default="auto",
                   help="shard tables by rows inside a host (auto: tables larger than one rank's share)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cpu: gloo; cuda: NCCL with one GPU per rank (cuda:<local rank>)")
    p.add_argument("--wire-dtype", choices=("fp32", "fp16", "bf16", "fp8_e4m3"), default=None,
                   help="format of the embedding exchanges, forward and gradients (default: exact); "
                        "compared with the tolerance of that format (runtime/wire_codec.py)")
    p.add_argument("--batch-per-rank", type=int, default=4,
                   help="samples per rank; the factory gets batch_size = world x this when it takes one (default 4)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate of the one optimizer step (default 0.1)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before every rank is killed")
    p.set_defaults(func=run_verify)


def _preflight(opts, topo) -> None:
    """Load MODEL_SPEC and transform it once here, on the CPU, so a factory, an option or a model that
    cannot be transformed fails in seconds with the usual two-line error instead of identically on
    every rank after they started."""
    from dmt_compile.passes.options import TransformOptions
    from dmt_compile.tools.verify import _transform, _load_for_preflight

    if opts.strategy == "sptt":
        TransformOptions(tower_module=opts.tower_module, compression=opts.compression).validated()
    model, inputs = _load_for_preflight(opts, topo.world_size)
    _transform(opts, model, inputs, topo if opts.strategy == "sptt" else Topology(1, topo.world_size))


def _say(text: str, start: float) -> None:
    print(f"verify: {text} ({time.monotonic() - start:.1f} s)", file=sys.stderr, flush=True)


def run_verify(args: argparse.Namespace, stdout: IO[str]) -> int:
    from dmt_compile.runtime.comm_stats import summary_table
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.tools.verify import VerifyOptions, verify_worker
    from dmt_compile.runtime.devices import check_device

    start = time.monotonic()
    topo = as_topology(args.topology)
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout:g}",
                         "e.g. --timeout 300 (every rank is killed after that long)")
    opts = VerifyOptions(args.model, str(topo), args.tower_module, args.compression, args.batch_per_rank,
                         args.optimizer, args.lr, strategy=args.strategy, row_wise=args.row_wise,
                         device=args.device, wire_dtype=args.wire_dtype)
    check_device(args.device, topo.local_size)
    _preflight(opts, topo)
    backend = "nccl" if args.device == "cuda" else "gloo"
    _say(f"transformed in this process; starting {topo.world_size} ranks ({backend}, {topo})", start)
    results = launch_local(verify_worker, topo, args=(opts,), timeout_s=args.timeout, backend=backend)
    _say("every rank finished", start)
    rows = [[r["rank"], f"{r['output']:.3g}", f"{r['grad']:.3g}", f"{r['param']:.3g}", r["owned_tables"],
             r["param_bytes"]["embedding"], r["param_bytes"]["tower"], r["param_bytes"]["dense"]]
            for r in results]
    reference = "original model" if args.tower_module == "identity" else "single-process transformed model"
    stdout.write(f"verify {args.model} on {topo} ({args.strategy}, tower module {args.tower_module}, "
                 f"global batch {results[0]['batch']}, {args.optimizer}) against the {reference}\n\n")
    if results[0].get("eval_mode_for"):
        stdout.write(f"note: the model has {', '.join(results[0]['eval_mode_for'])} in training mode, whose output "
                     "depends on the whole batch (per-rank statistics under data parallelism); compared in eval "
                     "mode (use SyncBatchNorm to train it distributed)\n\n")
    stdout.write(tabulate(rows, headers=["rank", "max|d| output", "max|d| grad", "max|d| param after step",
                                         "tables owned", "table bytes", "TM bytes", "dense bytes"]) + "\n\n")
    stdout.write("bytes moved per group (this step, forward + backward):\n")
    stdout.write(summary_table([r["stats"] for r in results]) + "\n\n")
    worst = max(max(r["output"], r["grad"], r["param"]) for r in results)
    tolerance = WIRE_TOLERANCE.get(args.wire_dtype, TOLERANCE) if args.wire_dtype else TOLERANCE
    mismatched = sorted({n for r in results for n in r["grad_mismatch"]})
    if mismatched:
        stdout.write(f"FAIL: gradients present on one side only: {mismatched}\n")
        return 1
    if worst > tolerance:
        stdout.write(f"FAIL: largest difference {worst:.3g} > {tolerance:g}\n")
        return 1
    stdout.write(f"OK: largest difference {worst:.3g} <= {tolerance:g}\n")
    return 0
