"""Cross-host id bytes and step time with and without `dedup_ids`, on the bench DLRM with multi-hot Zipf ids.

2x2 ranks on this machine (launch_local, gloo over loopback: the time is CPU, not a network),
`--ids-per-feature` ids per sample and feature (sum-pooled), Zipf `--zipf`, identity Tower Modules.
Per rank: the cross-host id bytes sent (every ``cross/ids.*`` op), the analytic count (8 bytes per
distinct id of each table whose tower is on the other host), the median step time, and the
share of exchange time hidden behind compute (runtime/overlap_stats.py).

    python benchmarks/bench_id_dedup.py --batch-per-rank 1024 --ids-per-feature 20 --zipf 1.1
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def _run(dedup: bool, args) -> dict:
    import dmt_compile
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.training.batching import infer_batch_layout
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.runtime.overlap_stats import hidden_fraction, reset_overlap
    from benchmarks.emulated.model import factory

    torch.set_num_threads(1)
    rank = torch.distributed.get_rank()
    b = args.batch_per_rank
    model, inputs = factory(batch_size=4 * b, ids_per_feature=args.ids_per_feature, zipf=args.zipf)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module=args.tower_module,
                                compression=None if args.tower_module == "identity" else 4)
    local = infer_batch_layout(dmt).slice(dmt.input_spec.flatten(inputs, {}), rank * b, (rank + 1) * b)
    sharded = ShardedDmt(dmt, HierarchicalGroups.build("2x2"), dedup_ids=dedup)
    analytic = sum(8 * int(torch.unique(x).numel()) for d in dmt.plan.details if d.host != rank // 2
                   for leaf, x in zip(dmt.input_spec.leaves, local) if leaf.feature in d.features)
    times = []
    for step in range(args.warmup + args.steps):
        reset_overlap()
        torch.distributed.barrier()
        t0 = time.perf_counter()
        with recording() as stats:
            sharded.gm(*local).float().pow(2).mean().backward()
        times.append(time.perf_counter() - t0)
    ids = {k: v["bytes_sent"] for k, v in stats.snapshot(by_op=True).items() if k.startswith("cross/ids.")}
    return {"step_ms": 1e3 * statistics.median(times[args.warmup:]), "ids_bytes": ids,
            "ids_total": sum(ids.values()), "analytic_distinct_bytes": analytic, "hidden": hidden_fraction()}


def worker(rank: int, args) -> dict:
    return {"plain": _run(False, args), "dedup": _run(True, args)}


def main(argv=None) -> None:
    from dmt_compile.runtime.launch import launch_local

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-per-rank", type=int, default=1024)
    ap.add_argument("--ids-per-feature", type=int, default=20)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--tower-module", default="identity")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args(argv)
    results = launch_local(worker, "2x2", args=(args,), timeout_s=1200)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
