"""Per-op CPU profile of one training step (forward + backward), flat vs DMT with each Tower Module.

Single process, one thread, the bench model (`benchmarks.emulated.model`, 26 features of
dim 64): flat runs the original model, DMT the 2x2 transform with hierarchical feed (two towers of
13 features, each compressed c-fold, the global interaction over the compressed outputs). Both see
the same B rows, so the comparison is per sample: a rank's TM sees N·b rows of one tower, the same
work per sample. Reports CPU ms per step (median of `--repeats` timed blocks), forward FLOPs per
sample (torch.utils.flop_counter: total, and the Tower Modules' share) and the top ops by self CPU
time (torch.profiler).

    python benchmarks/profile_tower_modules.py --batch 2048 --tms dot,linear,cross,wukong --markdown
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import dmt_compile
from benchmarks.emulated.model import factory
from dmt_compile.topo import Topology


def build(kind: str, batch: int, compression: float):
    model, inputs = factory(batch_size=batch)
    if kind == "flat":
        return model, inputs
    return dmt_compile.transform(model, Topology(2, 2), inputs, tower_module=kind, compression=compression,
                                 feed="hierarchical"), inputs


def step(model, inputs) -> None:
    model(*inputs).sum().backward()


def cpu_ms(model, inputs, repeats: int, per_block: int = 3) -> float:
    for _ in range(2):
        step(model, inputs)
    blocks = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(per_block):
            step(model, inputs)
        blocks.append((time.process_time() - t0) / per_block * 1e3)
    return statistics.median(blocks)


def flops_per_sample(model, inputs, batch: int) -> tuple[float, float]:
    """Forward FLOPs per sample: (everything, the Tower Modules alone)."""
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(*inputs)
    tm = sum(sum(v.values()) for k, v in fc.get_flop_counts().items() if re.fullmatch(r".*\.tower\d+_tm", k))
    return fc.get_total_flops() / batch, tm / batch


def op_table(model, inputs, steps: int, rows: int) -> list[tuple[str, float]]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step(model, inputs)
    avgs = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    return [(e.key, e.self_cpu_time_total / 1e3 / steps) for e in avgs[:rows]]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--compression", type=float, default=4.0)
    ap.add_argument("--tms", default="dot,linear,cross,wukong")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--ops", type=int, default=8, help="rows of the per-op table")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for kind in ["flat", *args.tms.split(",")]:
        model, inputs = build(kind, args.batch, args.compression)
        total, tm = flops_per_sample(model, inputs, args.batch)
        results[kind] = {"cpu_ms": cpu_ms(model, inputs, args.repeats), "flops": total, "tm_flops": tm,
                         "ops": op_table(model, inputs, 3, args.ops)}
    if not args.markdown:
        print(json.dumps(results, indent=1))
        return
    flat = results["flat"]
    print("| model | CPU ms/step | vs flat | fwd FLOPs/sample | of which TMs | vs flat |")
    print("|---|---|---|---|---|---|")
    for kind, r in results.items():
        print(f"| {kind} | {r['cpu_ms']:.1f} | {r['cpu_ms'] / flat['cpu_ms']:.2f}× | {r['flops'] / 1e3:.0f}k | "
              f"{r['tm_flops'] / 1e3:.0f}k | {r['flops'] / flat['flops']:.2f}× |")
    for kind, r in results.items():
        print(f"\n{kind}: " + ", ".join(f"{k} {ms:.1f}" for k, ms in r["ops"]))


if __name__ == "__main__":
    main()
