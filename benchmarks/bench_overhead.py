"""Single-process overhead of the identity-TM model vs the original eager model (target ≤ 1.05x).

Both models run side by side, interleaved, on the same inputs; the ratio of each pair is
recorded and the median ratio reported (the machine is noisy; ratios measured together are not).

    python benchmarks/bench_overhead.py --features 26 --batch 2048 --pairs 30
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dmt_compile  # noqa: E402
from synthetic_dlrm import factory  # noqa: E402


def _time(fn, inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - start) / inner


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, default=26)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--inner", type=int, default=5)
    p.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, inputs = factory(args.features, batch_size=args.batch)
    dmt = dmt_compile.transform(model, "2x4", inputs)
    model.eval()
    dmt.eval()

    def step(m):
        if args.backward:
            return lambda: m(*inputs).sum().backward()
        return lambda: m(*inputs)

    ctx = torch.enable_grad() if args.backward else torch.no_grad()
    with ctx:
        for _ in range(3):
            step(model)()
            step(dmt)()
        ratios, eager, towered = [], [], []
        for i in range(args.pairs):
            first, second = (model, dmt) if i % 2 == 0 else (dmt, model)
            a = _time(step(first), args.inner)
            b = _time(step(second), args.inner)
            t_model, t_dmt = (a, b) if first is model else (b, a)
            eager.append(t_model)
            towered.append(t_dmt)
            ratios.append(t_dmt / t_model)
    what = "forward+backward" if args.backward else "forward"
    print(f"overhead ({what}, {args.features} features, batch {args.batch}, {args.pairs} pairs): "
          f"median ratio {statistics.median(ratios):.3f} (p10 {statistics.quantiles(ratios, n=10)[0]:.3f}, "
          f"p90 {statistics.quantiles(ratios, n=10)[-1]:.3f}); eager median {statistics.median(eager) * 1e3:.2f} ms, "
          f"dmt median {statistics.median(towered) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
