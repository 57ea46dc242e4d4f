"""`ShardedDmt`: one rank's share of a transformed model, runnable under torch.distributed.

Build it on every rank from the same single-process `DmtModel` (same factory, same seed):
`ShardedDmt(dmt, groups)` for SPTT, `ShardedDmt.flat(dmt_1xW, groups)` for the flat baseline
(table-wise over the whole world, one global AlltoAll). Ranks exchange a plan fingerprint first.

Gradient semantics: each rank computes a loss that is a mean over its local batch; then
`sync_gradients()` makes every gradient equal to the gradient of the mean loss over the global
batch: dense (data-parallel) parameters are averaged over the world, Tower-Module parameters are
summed over the host and divided by the world size (host t sees every sample of its tower),
owned embedding tables are divided by the world size (their rows already summed every sample).

Replicas at start-up (`init_sync`): dense parameters and buffers are replicated over the world
and Tower-Module ones over the host, so they must start equal, as DDP requires. `"broadcast"`
(default) copies them from world rank 0 (dense) and from the host's first rank (Tower Modules);
`"check"` compares digests and raises `RuntimeSetupError` naming the tensors that differ (e.g. a
`torch.manual_seed(rank)` before `transform`); `"off"` trusts the caller.

Devices: `device=` (e.g. `cuda:LOCAL_RANK` under NCCL) moves the lowered program's parameters and
buffers there before the replicas are synchronised, and every batch passed to `forward` follows.
"""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.ir.module_paths import RUNTIME_ROOT, is_tower_module
from dmt_compile.lowering.lower import RankLayout, lower_for_rank
from dmt_compile.lowering.owners import ROW_WISE_MODES
from dmt_compile.runtime.collectives import all_reduce_grads
from dmt_compile.runtime.comm_stats import record
from dmt_compile.runtime.devices import to_device
from dmt_compile.runtime.groups import HierarchicalGroups, check_fingerprint

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["ShardedDmt", "plan_fingerprint", "INIT_SYNC_MODES"]

INIT_SYNC_MODES = ("broadcast", "check", "off")


def plan_fingerprint(dmt: DmtModel, layout_kind: str) -> str:
    """What every rank must agree on: strategy, topology, plan and the single-process graph's code."""
    text = "\n".join([layout_kind, str(dmt.topology), dmt.plan.to_json(), dmt.graph_module.code,
                      f"wire_dtype={getattr(dmt, 'wire_dtype', None)}"])
    return hashlib.sha256(text.encode()).hexdigest()


class ShardedDmt(nn.Module):
    def __init__(self, dmt: DmtModel, groups: HierarchicalGroups, *, strategy: str = "sptt", row_wise: str = "auto",
                 init_sync: str = "broadcast", device: torch.device | str | None = None,
                 dedup_ids: bool = False):
        super().__init__()
        if not isinstance(dedup_ids, bool):
            raise RuntimeSetupError(f"dedup_ids must be True or False, got {dedup_ids!r}", "pass dedup_ids=True")
        if init_sync not in INIT_SYNC_MODES:
            raise RuntimeSetupError(f"unknown init_sync {init_sync!r}", "use 'broadcast', 'check' or 'off'")
        topo = groups.topology
        if strategy == "sptt":
            if (dmt.topology.num_hosts, dmt.topology.local_size) != (topo.num_hosts, topo.local_size):
                raise RuntimeSetupError(
                    f"the model was transformed for topology {dmt.topology} but the processes form {topo}",
                    f"transform with topology '{topo.num_hosts}x{topo.local_size}'",
                )
            layout = RankLayout(topo.num_hosts, topo.local_size, groups.host, groups.local, groups.peer,
                                groups.intra, "intra", groups.local, topo.local_size, row_wise=row_wise,
                                wire_dtype=getattr(dmt, "wire_dtype", None))
        elif strategy == "flat":
            if dmt.plan.num_towers != 1:
                raise RuntimeSetupError("the flat baseline needs a one-tower transform",
                                        "transform with topology f'1x{world}' and num_towers=1")
            world = topo.world_size
            hosts = [topo.host_of(r) for r in range(world)]
            layout = RankLayout(1, world, 0, groups.rank, None, groups.world, "world", groups.rank, world,
                                tuple(hosts), row_wise="never", wire_dtype=getattr(dmt, "wire_dtype", None))
        else:
            raise RuntimeSetupError(f"unknown strategy {strategy!r}", "use 'sptt' or 'flat'")
        if row_wise not in ROW_WISE_MODES:
            raise RuntimeSetupError(f"unknown row_wise {row_wise!r}", "use 'auto', 'never' or 'always'")
        check_fingerprint(plan_fingerprint(dmt, f"{strategy}/{row_wise}/dedup={dedup_ids}"), groups.world, what="plan")
        lowered = lower_for_rank(dmt, layout)
        self.gm = lowered.gm
        self.dedup_ids = dedup_ids
        for m in self.gm.modules():  # the cross-host id exchange sends each stream's distinct ids once
            if hasattr(m, "dedup_ids"):
                m.dedup_ids = dedup_ids
        self.input_spec = dmt.input_spec
        self.plan = dmt.plan
        self.groups = groups
        self.strategy = strategy
        self.owners = lowered.owners
        self.row_shards = lowered.row_shards  # (parameter, table name, start row, stop row)
        self.embedding_params = lowered.embedding_params
        self.tower_params = lowered.tower_params
        self.dense_params = lowered.dense_params
        # the rank's device (module docstring, "Devices"): parameters move in place (same objects, so the
        # lists above and the single-process model's modules follow); buffers and batches move with them
        self.device = torch.device("cpu") if device is None else torch.device(device)
        if self.device.type != "cpu":
            self.gm.to(self.device)
        if init_sync != "off":
            self._sync_replicas(init_sync)

    def replicas(self) -> list[tuple[str, list[torch.Tensor], Any, int]]:
        """(label, tensors, group, source rank) of each replicated set: dense over the world, TMs over the host."""
        owned = {id(p) for p in self.embedding_params} | {id(p) for p, *_ in self.row_shards}
        owned |= {id(b) for name, m in self.gm.named_children() if name == RUNTIME_ROOT for b in m.buffers()}
        tm = {id(t) for t in self.tower_params}
        for name, m in self.gm.named_modules():
            if is_tower_module(name):
                tm |= {id(b) for b in m.buffers()}
        dense = [p for p in self.dense_params if id(p) not in tm] + [b for b in self.gm.buffers()
                                                                     if id(b) not in owned | tm]
        towers = [t for _, t in sorted((n, t) for n, t in self.gm.named_parameters() if id(t) in tm)]
        towers += [b for _, b in sorted((n, b) for n, b in self.gm.named_buffers() if id(b) in tm)]
        topo = self.groups.topology
        if self.strategy == "flat":
            return [("world", dense + towers, self.groups.world, 0)]
        return [("world", dense, self.groups.world, 0),
                ("intra", towers, self.groups.intra, topo.host_of(self.groups.rank) * topo.local_size)]

    @torch.no_grad()
    def _sync_replicas(self, mode: str) -> None:
        """Make replicated tensors equal on every replica (class docstring, `init_sync`)."""
        for label, tensors, group, src in self.replicas():
            names = {id(t): n for n, t in [*self.gm.named_parameters(), *self.gm.named_buffers()]}
            if mode == "check":
                _check_replicas(label, tensors, group, names)
            else:
                _broadcast(label, tensors, group, src)

    @classmethod
    def flat(cls, dmt_one_tower: Any, groups: HierarchicalGroups) -> "ShardedDmt":
        return cls(dmt_one_tower, groups, strategy="flat")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        flat = self.input_spec.flatten(args, kwargs)
        if self.device.type != "cpu":  # batches follow the rank's device (a no-op for tensors already there)
            flat = [to_device(x, self.device) for x in flat]
        return self.gm(*flat)

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


def _digest(t: torch.Tensor) -> str:
    data = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def _check_replicas(label: str, tensors: list[torch.Tensor], group: Any, names: dict[int, str]) -> None:
    mine = [_digest(t) for t in tensors]
    every: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(every, mine, group=group)
    differ = [names.get(id(t), "?") for i, t in enumerate(tensors) if len({d[i] for d in every}) > 1]
    if differ:
        where = "all ranks" if label == "world" else "the ranks of a host"
        raise RuntimeSetupError(
            f"replicated tensors differ across {where} at start-up: {', '.join(differ[:8])}"
            + (f" and {len(differ) - 8} more" if len(differ) > 8 else ""),
            "build the model with the same seed on every rank (no torch.manual_seed(rank) before transform), "
            "or use init_sync='broadcast' to copy them from one rank")


def _broadcast(label: str, tensors: list[torch.Tensor], group: Any, src: int) -> None:
    """Broadcast `tensors` from global rank `src` over `group`, one flat buffer per dtype."""
    size, me = dist.get_world_size(group), dist.get_rank(group)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    root = dist.get_group_rank(group, src) if group is not None else src
    for dtype, ts in by_dtype.items():
        buf = torch.cat([t.detach().reshape(-1) for t in ts])
        dist.broadcast(buf, src=src, group=group)
        nbytes = buf.numel() * buf.element_size()
        sent = [nbytes if me == root and j != me else 0 for j in range(size)]
        recv = [nbytes if j == root and me != root else 0 for j in range(size)]
        record(label, "init_broadcast", sent, recv, me)
        offset = 0
        for t in ts:
            t.copy_(buf[offset:offset + t.numel()].view_as(t))
            offset += t.numel()
