"""Cost of the id range check (runtime/id_check.py) against one distributed training step (target <= 2 %).

Every rank of a gloo run trains the synthetic DLRM sharded as DMT (forward, backward, gradient
sync). Two measurements, both as medians:

* **interleaved steps**: pairs of (check on, check off) step timings, alternating which goes first;
  the ratio of each pair is recorded (the machine is noisy, pairs measured together are not);
* **the check alone**: the check called on the very ids the step exchanged, timed over many
  repetitions, divided by the median step time (steadier than the difference of two noisy steps).

    python benchmarks/bench_id_check.py --topology 2x2 --features 26 --batch-per-rank 512 --pairs 20
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from dmt_compile.runtime.launch import launch_local  # noqa: E402


def _rank(rank: int, args: dict) -> dict:
    import dmt_compile
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.runtime.groups import HierarchicalGroups
    from synthetic_dlrm import factory

    groups = HierarchicalGroups.build(args["topology"])
    world, b = groups.world_size, args["batch_per_rank"]
    model, (dense, sparse) = factory(args["features"], batch_size=world * b)
    sharded = ShardedDmt(dmt_compile.transform(model, args["topology"], (dense, sparse)), groups)
    mine = slice(rank * b, (rank + 1) * b)
    inputs = (dense[mine], {k: v[mine] for k, v in sparse.items()})
    ids_module = sharded.gm.get_submodule("dist.ids")
    check = ids_module.id_check
    seen: list = []
    ids_module.register_forward_pre_hook(lambda m, a: seen.append(a) if not seen else None)

    def step() -> None:
        sharded.zero_grad(set_to_none=True)
        sharded(*inputs).float().mean().backward()
        sharded.sync_gradients()

    def timed(enabled: bool) -> float:
        check.enabled = enabled
        start = time.perf_counter()
        for _ in range(args["inner"]):
            step()
        return (time.perf_counter() - start) / args["inner"]

    for _ in range(3):
        timed(True)  # warm up
    on, off, ratios = [], [], []
    for i in range(args["pairs"]):
        first = bool(i % 2)
        a, c = timed(first), timed(not first)
        t_on, t_off = (a, c) if first else (c, a)
        on.append(t_on)
        off.append(t_off)
        ratios.append(t_on / t_off)
    check.enabled = True
    alone = []
    for _ in range(args["pairs"]):
        start = time.perf_counter()
        for _ in range(100):
            check(seen[0])
        alone.append((time.perf_counter() - start) / 100)
    step_s = statistics.median(off)
    return {"rank": rank, "step_on_ms": statistics.median(on) * 1e3, "step_off_ms": step_s * 1e3,
            "pair_ratio": statistics.median(ratios), "check_us": statistics.median(alone) * 1e6,
            "check_fraction": statistics.median(alone) / step_s, "fields": check.num_fields,
            "pairs": [(a, b) for a, b in zip(on, off)],
            "ids_per_step": sum(int(x.numel()) for t in seen[0] for x in t if isinstance(x, torch.Tensor))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topology", default="2x2")
    p.add_argument("--features", type=int, default=26)
    p.add_argument("--batch-per-rank", type=int, default=512)
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--inner", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the per-rank results here")
    args = vars(p.parse_args(argv))
    results = launch_local(_rank, args["topology"], args=(args,), timeout_s=1800, pg_timeout_s=300)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"id range check vs one training step: {args['topology']}, {args['features']} features, "
          f"{args['batch_per_rank']} samples per rank, {args['pairs']} pairs x {args['inner']} steps; "
          f"load average {' '.join(load)}")
    for r in results:
        print(f"rank {r['rank']}: step {r['step_off_ms']:.2f} ms (check off) / {r['step_on_ms']:.2f} ms (on), "
              f"median pair ratio {r['pair_ratio']:.4f}; check alone {r['check_us']:.1f} us "
              f"= {100 * r['check_fraction']:.2f} % of a step ({r['fields']} fields, {r['ids_per_step']} ids)")
    worst = max(r["check_fraction"] for r in results)
    print(f"worst rank: check = {100 * worst:.2f} % of a step; median pair ratio over ranks "
          f"{statistics.median(r['pair_ratio'] for r in results):.4f}")
    if args["json"]:
        with open(args["json"], "w") as f:
            json.dump({"args": args, "load": load, "ranks": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
