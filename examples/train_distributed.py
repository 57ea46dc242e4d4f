"""Train a transformed model with SPTT towers on torch.distributed (gloo on CPU).

On a cluster, one process per rank with torchrun (LOCAL_WORLD_SIZE must match the topology):

    torchrun --nnodes 2 --nproc-per-node 4 ... examples/train_distributed.py --topology 2x4

On one box, the local launcher starts hosts x ranks processes itself:

    python examples/train_distributed.py --local --topology 2x2 --steps 5
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

import dmt_compile
from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.runtime import HierarchicalGroups, init_from_env, launch_local, recording
from dmt_compile.runtime.batching import infer_batch_layout
from dmt_compile.lowering.sharded import ShardedDmt
from dmt_compile.topo import as_topology

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dlrm.py") + ":factory"


def train(rank: int, args: argparse.Namespace, groups: HierarchicalGroups | None = None) -> dict:
    topo = as_topology(args.topology)
    groups = groups or HierarchicalGroups.build(topo)
    world = topo.world_size
    model, inputs = load_model_spec(args.model, batch_size=world * args.batch_per_rank, seed=0)
    torch.manual_seed(0)  # the same Tower Module weights on every rank
    dmt = dmt_compile.transform(model, topo, inputs, tower_module=args.tower_module,
                                compression=None if args.tower_module == "identity" else args.compression)
    layout = infer_batch_layout(dmt)
    sharded = ShardedDmt(dmt, groups)
    opt = torch.optim.SGD(sharded.parameters(), lr=args.lr)
    losses = []
    with recording() as stats:
        for step in range(args.steps):
            _, batch = load_model_spec(args.model, batch_size=world * args.batch_per_rank, seed=100 + step)
            flat = dmt.input_spec.flatten(batch, {})
            b = args.batch_per_rank
            local = layout.slice(flat, rank * b, (rank + 1) * b)
            labels = (torch.rand(world * b, 1, generator=torch.Generator().manual_seed(step)) > 0.5).float()
            out = sharded.gm(*local)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1, 1),
                                                                        labels[rank * b:(rank + 1) * b])
            opt.zero_grad()
            loss.backward()
            sharded.sync_gradients()
            opt.step()
            losses.append(float(loss.detach()))
    return {"rank": rank, "losses": losses, "stats": stats.snapshot(), "describe": sharded.describe()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--topology", default="2x2")
    p.add_argument("--tower-module", default="identity")
    p.add_argument("--compression", type=float, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch-per-rank", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--local", action="store_true", help="start all ranks on this machine")
    args = p.parse_args(argv)
    if args.local:
        results = launch_local(train, as_topology(args.topology), args=(args,), timeout_s=600)
    else:
        groups = init_from_env(as_topology(args.topology))
        results = [train(groups.rank, args, groups)]
    for r in results:
        print(f"{r['describe']}; loss {r['losses'][0]:.4f} -> {r['losses'][-1]:.4f}; "
              f"cross-host bytes sent {r['stats'].get('cross', {}).get('bytes_sent', 0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
