"""Checkpoint save / load time, this version against a baseline `checkpoint.py`, interleaved in the same ranks.

On a loaded machine two separate runs differ by more than what is measured; here both versions
save and load the same trained model in the same processes, alternating (ABBA...), and the
slowest rank's time of each call is kept. Reported: medians, the median of the per-pair ratios
with a distribution-free 95 % confidence interval (order statistics of the binomial), and the
load average before and after.

    python benchmarks/bench_checkpoint.py --baseline-commit 39e4ce0 --topology 2x2 --pairs 40
    # or, with a file:
    git show 39e4ce0:dmt_compile/lowering/checkpoint.py > /tmp/old_checkpoint.py
    python benchmarks/bench_checkpoint.py --baseline /tmp/old_checkpoint.py --topology 2x2 --pairs 40

`--profile DIR` then runs a few more calls of each version under cProfile on every rank and
writes `DIR/rank<r>_<new|old>_<save|load>.txt` (the functions by cumulative time).
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.util
import io
import math
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
# modules an older checkpoint.py imports that have moved since (same contents under the new name)
MOVED = {"dmt_compile.lowering.checkpoint_layout": "dmt_compile.training.checkpoint_layout"}


def _timed(fn) -> float:
    torch.distributed.barrier()
    t = time.perf_counter()
    fn()
    elapsed = torch.tensor([time.perf_counter() - t])
    torch.distributed.all_reduce(elapsed, op=torch.distributed.ReduceOp.MAX)
    return float(elapsed)


def _load_baseline(baseline: str):
    for old, new in MOVED.items():
        try:
            importlib.import_module(old)
        except ImportError:
            sys.modules[old] = importlib.import_module(new)
    spec = importlib.util.spec_from_file_location("baseline_checkpoint", baseline)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _profiled(rank: int, out_dir: str, label: str, fn, repeats: int) -> None:
    prof = cProfile.Profile()
    for i in range(repeats):
        torch.distributed.barrier()
        prof.enable()
        fn(i)
        prof.disable()
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    stats.sort_stats("cumulative").print_stats(45)
    text.write("\n--- this project's own functions (and the baseline's) ---\n")
    stats.print_stats(r"dmt_compile|baseline_checkpoint", 40)
    with open(os.path.join(out_dir, f"rank{rank}_{label}.txt"), "w") as fh:
        fh.write(f"{repeats} calls\n" + text.getvalue())


def _worker(rank: int, topology: str, b: int, pairs: int, baseline: str, directory: str,
            profile_dir: str | None, profile_repeats: int) -> dict:
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training import checkpoint as new

    old = _load_baseline(baseline)
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
    if profile_dir:
        for name, module in (("new", new), ("old", old)):
            where = os.path.join(directory, f"profile_{name}")
            _profiled(rank, profile_dir, f"{name}_save", lambda i: module.save_checkpoint(
                dist_model, f"{where}{i}", optimizer=opt, extra={"step": i}), profile_repeats)
            _profiled(rank, profile_dir, f"{name}_load", lambda i: module.load_checkpoint(
                dist_model, f"{where}{i}", optimizer=opt), profile_repeats)
    return times


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free interval for the median from order statistics
    (the number of values below the median is Binomial(n, 1/2))."""
    xs, n = sorted(values), len(values)
    tail, k, below = (1 - confidence) / 2, 0, 0.0
    while k < n and below + math.comb(n, k) / 2 ** n <= tail:  # the largest k with P(X <= k - 1) <= tail
        below += math.comb(n, k) / 2 ** n
        k += 1
    if k == 0:
        return statistics.median(xs), xs[0], xs[-1]
    return statistics.median(xs), xs[k - 1], xs[n - k]


def _load_average() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3]) if os.path.exists("/proc/loadavg") else "n/a"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--baseline", help="a checkpoint.py of an earlier version (git show ...)")
    which.add_argument("--baseline-commit", help="a commit whose dmt_compile/lowering/checkpoint.py is the baseline")
    p.add_argument("--topology", default="2x2")
    p.add_argument("--batch-per-rank", type=int, default=64)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--profile", metavar="DIR", help="also write cProfile listings of each version to DIR")
    p.add_argument("--profile-repeats", type=int, default=5)
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from dmt_compile.runtime.launch import launch_local

    with tempfile.TemporaryDirectory() as d:
        baseline = args.baseline
        if args.baseline_commit:
            baseline = os.path.join(d, "baseline_checkpoint.py")
            with open(baseline, "w") as fh:
                fh.write(subprocess.run(["git", "show", f"{args.baseline_commit}:dmt_compile/lowering/checkpoint.py"],
                                        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
        before = _load_average()
        times = launch_local(_worker, args.topology, timeout_s=3600,
                             args=(args.topology, args.batch_per_rank, args.pairs, os.path.abspath(baseline),
                                   os.path.join(d, "ck"), args.profile and os.path.abspath(args.profile),
                                   args.profile_repeats))[0]
    for what in ("save", "load"):
        new, old = times[f"{what} new"], times[f"{what} old"]
        ratio, low, high = median_ci([a / b for a, b in zip(new, old)])
        print(f"{what}: this version median {1000 * statistics.median(new):.1f} ms, baseline "
              f"{1000 * statistics.median(old):.1f} ms, median pair ratio {ratio:.3f} "
              f"(95 % CI {low:.3f}-{high:.3f}, {len(new)} pairs)")
    print(f"load average: before {before}, after {_load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
