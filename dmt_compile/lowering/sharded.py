"""`ShardedDmt`: one rank's share of a transformed model, runnable under torch.distributed.

Build it on every rank from the same single-process `DmtModel` (same factory, same seed):
`ShardedDmt(dmt, groups)` for SPTT, `ShardedDmt.flat(dmt_1xW, groups)` for the flat baseline
(table-wise over the whole world, one global AlltoAll). Ranks exchange a plan fingerprint first.

Gradient semantics: each rank computes a loss that is a mean over its local batch; then
`sync_gradients()` makes every gradient equal to the gradient of the mean loss over the global
batch: dense (data-parallel) parameters are averaged over the world, Tower-Module parameters are
summed over the host and divided by the world size (host t sees every sample of its tower),
owned embedding tables are divided by the world size (their rows already summed every sample).
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.lowering.lower import RankLayout, lower_for_rank
from dmt_compile.lowering.owners import ROW_WISE_MODES
from dmt_compile.runtime.collectives import all_reduce_grads
from dmt_compile.runtime.groups import HierarchicalGroups, check_fingerprint

__all__ = ["ShardedDmt", "plan_fingerprint"]


def plan_fingerprint(dmt: Any, layout_kind: str) -> str:
    """What every rank must agree on: strategy, topology, plan and the single-process graph's code."""
    text = "\n".join([layout_kind, str(dmt.topology), dmt.plan.to_json(), dmt.graph_module.code])
    return hashlib.sha256(text.encode()).hexdigest()


class ShardedDmt(nn.Module):
    def __init__(self, dmt: Any, groups: HierarchicalGroups, *, strategy: str = "sptt", row_wise: str = "auto"):
        super().__init__()
        topo = groups.topology
        if strategy == "sptt":
            if (dmt.topology.num_hosts, dmt.topology.local_size) != (topo.num_hosts, topo.local_size):
                raise RuntimeSetupError(
                    f"the model was transformed for topology {dmt.topology} but the processes form {topo}",
                    f"transform with topology '{topo.num_hosts}x{topo.local_size}'",
                )
            layout = RankLayout(topo.num_hosts, topo.local_size, groups.host, groups.local, groups.peer,
                                groups.intra, "intra", groups.local, topo.local_size, row_wise=row_wise)
        elif strategy == "flat":
            if dmt.plan.num_towers != 1:
                raise RuntimeSetupError("the flat baseline needs a one-tower transform",
                                        "transform with topology f'1x{world}' and num_towers=1")
            world = topo.world_size
            hosts = [topo.host_of(r) for r in range(world)]
            layout = RankLayout(1, world, 0, groups.rank, None, groups.world, "world", groups.rank, world,
                                tuple(hosts), row_wise="never")
        else:
            raise RuntimeSetupError(f"unknown strategy {strategy!r}", "use 'sptt' or 'flat'")
        if row_wise not in ROW_WISE_MODES:
            raise RuntimeSetupError(f"unknown row_wise {row_wise!r}", "use 'auto', 'never' or 'always'")
        check_fingerprint(plan_fingerprint(dmt, f"{strategy}/{row_wise}"), groups.world, what="plan")
        lowered = lower_for_rank(dmt, layout)
        self.gm = lowered.gm
        self.input_spec = dmt.input_spec
        self.plan = dmt.plan
        self.groups = groups
        self.strategy = strategy
        self.owners = lowered.owners
        self.row_shards = lowered.row_shards  # (parameter, table name, start row, stop row)
        self.embedding_params = lowered.embedding_params
        self.tower_params = lowered.tower_params
        self.dense_params = lowered.dense_params

    @classmethod
    def flat(cls, dmt_one_tower: Any, groups: HierarchicalGroups) -> "ShardedDmt":
        return cls(dmt_one_tower, groups, strategy="flat")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.gm(*self.input_spec.flatten(args, kwargs))

    @torch.no_grad()
    def sync_gradients(self) -> None:
        """Turn per-rank gradients of local-mean losses into gradients of the global-mean loss."""
        world = self.groups.topology.world_size
        all_reduce_grads(self.dense_params, self.groups.world, "world", average=True, op="dense_grads")
        if self.strategy == "sptt" and self.tower_params:
            all_reduce_grads(self.tower_params, self.groups.intra, "intra", average=False, op="tm_grads")
            for p in self.tower_params:
                if p.grad is not None:
                    p.grad.div_(world)
        elif self.tower_params:  # flat: the single "tower" spans the world
            all_reduce_grads(self.tower_params, self.groups.world, "world", average=True, op="tm_grads")
        for p in self.embedding_params:
            if p.grad is not None:
                p.grad.div_(world)

    def parameter_bytes(self) -> dict[str, int]:
        """Bytes of parameters this rank holds, per kind (tables are held by their owner only)."""
        def size(ps):
            return sum(p.numel() * p.element_size() for p in ps)

        return {"embedding": size(self.embedding_params), "tower": size(self.tower_params),
                "dense": size(self.dense_params)}

    def describe(self) -> str:
        rank = dist.get_rank() if dist.is_initialized() else 0
        return (f"rank {rank} ({self.strategy}): owns {len(self.embedding_params)} tables, "
                f"{len(self.tower_params)} tower-module tensors, {len(self.dense_params)} dense tensors")
