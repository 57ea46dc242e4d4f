"""How long `transform` takes on a synthetic DLRM with many features (target: < 5 s at 1,000).

    python benchmarks/bench_transform.py --features 1000 --repeats 3
    python benchmarks/bench_transform.py --features 1000 --capture export   # the torch.export path
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
    p.add_argument("--topology", default="8x8")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tower-module", default="identity")
    p.add_argument("--capture", default="auto", help="capture path: auto (fx first), export, ...")
    args = p.parse_args(argv)
    model, inputs = factory(args.features, batch_size=8)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        dmt = dmt_compile.transform(model, args.topology, inputs, tower_module=args.tower_module,
                                    capture_paths=args.capture)
        times.append(time.perf_counter() - start)
    print(f"transform: {args.features} features, topology {args.topology}, tower module {args.tower_module}, "
          f"capture {dmt.capture_report.path}: "
          f"median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)}), "
          f"{len(dmt.graph_module.graph.nodes)} nodes, {dmt.plan.num_towers} towers, "
          f"balance {dmt.plan.balance():.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
