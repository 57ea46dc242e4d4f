"""Checkpoint save / load time, this version against a baseline `checkpoint.py`, interleaved in the same ranks.

On a loaded machine two separate runs differ by more than what is measured; here both versions
save and load the same trained model in the same processes, alternating (ABAB...), and the
slowest rank's time of each call is kept. Medians and the median of the per-pair ratios reported.

    git show <commit>:dmt_compile/training/checkpoint.py > /tmp/old_checkpoint.py
    python benchmarks/bench_checkpoint.py --baseline /tmp/old_checkpoint.py --topology 2x2 --pairs 10
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def _timed(fn) -> float:
    torch.distributed.barrier()
    t = time.perf_counter()
    fn()
    elapsed = torch.tensor([time.perf_counter() - t])
    torch.distributed.all_reduce(elapsed, op=torch.distributed.ReduceOp.MAX)
    return float(elapsed)


def _worker(rank: int, topology: str, b: int, pairs: int, baseline: str, directory: str) -> dict:
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training import checkpoint as new

    spec = importlib.util.spec_from_file_location("baseline_checkpoint", baseline)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    torch.set_num_threads(1)
    model, inputs = load_model_spec(DLRM, batch_size=dmt_compile.topo.as_topology(topology).world_size * b)
    dist_model = dmt_compile.distribute(dmt_compile.transform(model, topology, inputs), topology)
    opt = torch.optim.Adam(dist_model.parameters(), lr=1e-3)
    out = dist_model(*dist_model.local_batch(*inputs))
    out.float().pow(2).mean().backward()
    opt.step()
    times: dict[str, list[float]] = {"save new": [], "save old": [], "load new": [], "load old": []}
    for i in range(pairs + 1):  # one warm-up pair
        for name, module in (("new", new), ("old", old)) if i % 2 else (("old", old), ("new", new)):
            path = os.path.join(directory, f"{name}{i}")
            save = _timed(lambda: module.save_checkpoint(dist_model, path, optimizer=opt, extra={"step": i}))
            load = _timed(lambda: module.load_checkpoint(dist_model, path, optimizer=opt))
            if i:
                times[f"save {name}"].append(save)
                times[f"load {name}"].append(load)
    return times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="a checkpoint.py of an earlier version (git show ...)")
    p.add_argument("--topology", default="2x2")
    p.add_argument("--batch-per-rank", type=int, default=64)
    p.add_argument("--pairs", type=int, default=10)
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from dmt_compile.runtime.launch import launch_local

    with tempfile.TemporaryDirectory() as d:
        times = launch_local(_worker, args.topology, timeout_s=1800,
                             args=(args.topology, args.batch_per_rank, args.pairs, os.path.abspath(args.baseline),
                                   d))[0]
    for what in ("save", "load"):
        new, old = times[f"{what} new"], times[f"{what} old"]
        ratio = statistics.median(a / b for a, b in zip(new, old))
        print(f"{what}: this version median {1000 * statistics.median(new):.1f} ms, baseline "
              f"{1000 * statistics.median(old):.1f} ms, median pair ratio {ratio:.3f} ({len(new)} pairs)")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}" if os.path.exists("/proc/loadavg") else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
