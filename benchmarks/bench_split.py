"""Backward of cutting a received buffer into per-feature tensors: one slice per feature vs one torch.split.

Each ``got[a:b]`` slice's backward zero-fills a gradient the size of the whole buffer and the
pieces' gradients are summed (O(pieces x buffer)); ``torch.split``'s backward concatenates the
pieces' gradients once. The runtime (``wire.split_received``) uses one split per buffer.

    python benchmarks/bench_split.py --pieces 26 --rows 4096 --dim 64 --reps 20
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch


def _backward_ms(cut, buf: torch.Tensor, sizes: list[int], rows: int, dim: int, reps: int) -> float:
    times = []
    for _ in range(reps + 2):
        x = buf.detach().requires_grad_()
        loss = sum(p.view(rows, dim).sum() for p in cut(x, sizes))
        t0 = time.thread_time()
        loss.backward()
        times.append(time.thread_time() - t0)
    return statistics.median(times[2:]) * 1e3


def slices(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    out, at = [], 0
    for n in sizes:
        out.append(x[at: at + n])
        at += n
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pieces", type=int, default=26)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [args.rows * args.dim] * args.pieces
    buf = torch.randn(sum(sizes))
    a = _backward_ms(slices, buf, sizes, args.rows, args.dim, args.reps)
    b = _backward_ms(lambda x, s: torch.split(x, s), buf, sizes, args.rows, args.dim, args.reps)
    print(f"backward of {args.pieces} pieces of [{args.rows}, {args.dim}] (CPU ms, median of {args.reps}): "
          f"per-piece slices {a:.1f}, one torch.split {b:.1f} ({a / b:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
