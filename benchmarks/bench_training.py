"""Training step through `distribute` (gradients synchronised during backward) vs `ShardedDmt` with
`sync_gradients()` after backward, and the time of a DCP checkpoint save / load.

Both run in the same gloo processes, interleaved step by step, on two copies of the same model;
a step's time is the slowest rank's (forward, backward, sync, optimizer step). Medians reported.

    python benchmarks/bench_training.py --topology 2x2 --batch-per-rank 256 --pairs 20
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def _worker(rank: int, topology: str, b: int, pairs: int, bucket_cap_mb: float, ckpt_dir: str) -> dict:
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.training.batching import infer_batch_layout
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.topo import as_topology

    torch.set_num_threads(1)
    topo = as_topology(topology)
    world = topo.world_size
    groups = HierarchicalGroups.build(topo)
    model, inputs = load_model_spec(DLRM, batch_size=world * b)
    hooks = dmt_compile.distribute(dmt_compile.transform(model, topo, inputs), groups, bucket_cap_mb=bucket_cap_mb)
    plain_dmt = dmt_compile.transform(model, topo, inputs)
    plain = ShardedDmt(plain_dmt, groups)
    layout = infer_batch_layout(plain_dmt)
    opt_a = torch.optim.Adam(hooks.parameters(), lr=1e-3)
    opt_b = torch.optim.Adam(plain.parameters(), lr=1e-3)
    labels = (torch.rand(b, 1, generator=torch.Generator().manual_seed(rank)) > 0.5).float()
    local = hooks.local_batch(*inputs)
    flat = layout.slice(plain_dmt.input_spec.flatten(inputs, {}), rank * b, (rank + 1) * b)

    def step_hooks() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(hooks(*local).reshape(-1, 1), labels)
        opt_a.zero_grad()
        loss.backward()
        opt_a.step()

    def step_plain() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(plain.gm(*flat).reshape(-1, 1), labels)
        opt_b.zero_grad()
        loss.backward()
        plain.sync_gradients()
        opt_b.step()

    times = {"hooks": [], "after": [], "save": [], "load": []}
    for i in range(pairs + 2):  # two warm-up pairs
        for name, fn in (("hooks", step_hooks), ("after", step_plain)) if i % 2 else \
                (("after", step_plain), ("hooks", step_hooks)):
            torch.distributed.barrier()
            t = time.perf_counter()
            fn()
            if i >= 2:
                times[name].append(time.perf_counter() - t)
    for i in range(3):
        path = os.path.join(ckpt_dir, f"c{i}")
        torch.distributed.barrier()
        t = time.perf_counter()
        hooks.save_checkpoint(path, optimizer=opt_a)
        times["save"].append(time.perf_counter() - t)
        torch.distributed.barrier()
        t = time.perf_counter()
        hooks.load_checkpoint(path, optimizer=opt_a)
        times["load"].append(time.perf_counter() - t)
    size = sum(os.path.getsize(os.path.join(ckpt_dir, "c0", f)) for f in os.listdir(os.path.join(ckpt_dir, "c0")))
    return {"times": times, "buckets": len(hooks.reducer.buckets), "bytes": size,
            "launches": dict(hooks.reducer.launches)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--topology", default="2x2")
    p.add_argument("--batch-per-rank", type=int, default=256)
    p.add_argument("--pairs", type=int, default=20)
    p.add_argument("--bucket-cap-mb", type=float, default=25.0)
    args = p.parse_args(argv)
    sys.path.insert(0, ROOT)
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import as_topology

    with tempfile.TemporaryDirectory() as d:
        per_rank = launch_local(_worker, as_topology(args.topology), timeout_s=1200,
                                args=(args.topology, args.batch_per_rank, args.pairs, args.bucket_cap_mb, d))
    slowest = {k: [max(r["times"][k][i] for r in per_rank) for i in range(len(per_rank[0]["times"][k]))]
               for k in per_rank[0]["times"]}
    ratios = [a / b for a, b in zip(slowest["hooks"], slowest["after"])]

    def ms(xs):
        return f"{1000 * statistics.median(xs):.1f} ms"

    print(f"training step, DLRM on {args.topology}, batch {args.batch_per_rank} per rank, Adam, {args.pairs} pairs: "
          f"sync during backward (distribute, {per_rank[0]['buckets']} buckets) median {ms(slowest['hooks'])}, "
          f"sync after backward (ShardedDmt.sync_gradients) median {ms(slowest['after'])}, "
          f"median ratio {statistics.median(ratios):.3f}")
    print(f"buckets started while backward ran: {per_rank[0]['launches']}")
    print(f"checkpoint (model + Adam state, {per_rank[0]['bytes'] / 2**20:.1f} MB on disk): "
          f"save median {ms(slowest['save'])}, load median {ms(slowest['load'])}")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}" if os.path.exists("/proc/loadavg") else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
