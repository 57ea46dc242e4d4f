"""How long `strategy="auto"` takes to choose (no quality training) on a synthetic DLRM (target: < 10 s at 1,000).

    python benchmarks/bench_auto.py --features 1000 --topology h100:64 --repeats 3

Times `dmt_compile.choose_strategy` (capture, one tower plan, one feed trial, every candidate
predicted by the default predictor, or the fitted parameters of `--cost-params`); the transform of the chosen candidate is timed by bench_transform.py.
The first run of a process also pays the cost model's one-off sympy lambdify (~1 s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dmt_compile  # noqa: E402
from synthetic_dlrm import factory  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, default=1000)
    p.add_argument("--topology", default="h100:64")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cost-params", default=None, help="fitted parameter file (default: the default predictor)")
    args = p.parse_args(argv)
    model, inputs = factory(args.features, batch_size=8)
    times, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        choice = dmt_compile.choose_strategy(model, args.topology, inputs, batch_per_rank=args.batch, log=None,
                                             predictor=args.cost_params)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"choose (strategy auto): {args.features} features, topology {args.topology}, batch {args.batch}: "
          f"median {statistics.median(times):.2f} s wall (runs: {', '.join(f'{t:.2f}' for t in times)}), "
          f"{statistics.median(cpu):.2f} s CPU (runs: {', '.join(f'{t:.2f}' for t in cpu)}; the wall time on an idle "
          f"core, near enough: this is single-threaded Python), "
          f"{len(choice.rows)} candidates, {len(choice.refusals)} refusals, chosen {choice.chosen}"
          f"{' (uncertain)' if choice.uncertain else ''}; predictor: {choice.predictor}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
