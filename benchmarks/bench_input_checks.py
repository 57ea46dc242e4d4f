"""What the call-time input checks of `transform` cost (dmt_compile/capture/preconditions.py): one watched forward.

Times `check_model_and_inputs` (already-transformed / meta-device / id range checks on the example
inputs) and a whole `transform` of the synthetic DLRM, interleaved, and reports the medians and the
check's share of the transform (the transform includes the check).

    python benchmarks/bench_input_checks.py --features 1000 --batch 8 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dmt_compile  # noqa: E402
from dmt_compile.capture.preconditions import check_model_and_inputs  # noqa: E402
from synthetic_dlrm import factory  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--features", type=int, default=1000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--topology", default="8x8")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    model, inputs = factory(args.features, batch_size=args.batch)
    checks, transforms = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        check_model_and_inputs(model, inputs)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        dmt_compile.transform(model, args.topology, inputs)
        transforms.append(time.perf_counter() - start)
    c, t = statistics.median(checks), statistics.median(transforms)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"{args.features} features, batch {args.batch}, {args.repeats} repeats: input checks {c * 1e3:.0f} ms "
          f"of transform {t * 1e3:.0f} ms ({100 * c / t:.0f} %); load average {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
