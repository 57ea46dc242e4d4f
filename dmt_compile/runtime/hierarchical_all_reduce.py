"""Topology-aware all-reduce: reduce-scatter inside the host, all-reduce across hosts, all-gather
inside (only 1/L of the tensor crosses the NICs per rank), blocking or with its first stage in flight."""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from dmt_compile.runtime import duplex
from dmt_compile.runtime.collectives import _group_info, all_reduce_

__all__ = ["hierarchical_all_reduce_", "start_hierarchical_all_reduce_", "HierarchicalAllReduce"]


def hierarchical_all_reduce_(
    tensor: torch.Tensor, intra_group: Any, peer_group: Any, *, average: bool = False,
    op: str = "hier_all_reduce", labels: tuple[str, str] = ("intra", "cross"), tag: int = 0,
) -> torch.Tensor:
    """In-place sum (mean: ``average=True``) of ``tensor`` over the world, topology-aware; returns it.

    1. reduce-scatter inside the host (``intra_group``, L ranks): member ``i`` gets the host's
       sum of chunk ``i`` (``tensor_split`` into L chunks), as one all-to-all + a local sum;
    2. all-reduce of that chunk across hosts (``peer_group``: the ranks with my local index);
    3. all-gather of the chunks inside the host.

    Only ``1/L`` of the tensor crosses the NICs per rank. Every rank ends with bitwise the same
    result. Any shape and dtype (written in place), e.g. one flat gradient bucket; same numel on
    every rank. Counted under ``labels`` as ``op + ".rs" / ".ar" / ".ag"``; failures raise
    :class:`CollectiveError`. ``tag``: the point-to-point tag of the two in-host stages; give calls
    that may interleave with other exchanges on ``intra_group`` their own (gloo matches per pair and tag).
    """
    return start_hierarchical_all_reduce_(tensor, intra_group, peer_group, average=average, op=op,
                                          labels=labels, tag=tag).wait()


class HierarchicalAllReduce:
    """A :func:`hierarchical_all_reduce_` whose reduce-scatter is in flight; :meth:`wait` runs the
    cross-host all-reduce and the all-gather and writes the result into the tensor. Every rank must
    start and wait its hierarchical all-reduces in the same order."""

    def __init__(self, tensor: torch.Tensor, intra_group: Any, peer_group: Any, average: bool, op: str,
                 labels: tuple[str, str], tag: int):
        self.tensor, self.intra_group, self.peer_group = tensor, intra_group, peer_group
        self.average, self.op, self.labels, self.tag = average, op, labels, tag
        self.L, self.me = _group_info(intra_group)
        flat = tensor.detach().reshape(-1)
        numel = flat.numel()
        self.sizes = [numel // self.L + (1 if i < numel % self.L else 0) for i in range(self.L)]
        self.pending = None
        self.flat = flat
        if self.L > 1:  # 1) reduce-scatter: chunk j to member j (posted now, summed in wait)
            self.pending = duplex.start(flat, self.sizes, [self.sizes[self.me]] * self.L, intra_group, labels[0],
                                        op + ".rs", kind="sync", tag=tag)

    def wait(self) -> torch.Tensor:
        """Finish all three stages (blocking) and write the result into the tensor."""
        mine = self.across(self.scattered())
        gather = self.start_gather(mine, self.tag)
        return self.write(gather.wait() if gather is not None else mine)

    def scattered(self) -> torch.Tensor:
        """Stage 1's result: this member's chunk summed over the host (waits for the reduce-scatter)."""
        if self.pending is None:
            return self.flat.clone()
        return self.pending.wait().view(self.L, self.sizes[self.me]).sum(0)

    def across(self, mine: torch.Tensor) -> torch.Tensor:
        """Stage 2, in place: all-reduce my chunk across hosts (one chunk per rank crosses the NICs)."""
        if dist.get_world_size(self.peer_group) > 1:
            all_reduce_(mine, self.peer_group, self.labels[1], op=self.op + ".ar")
        return mine

    def start_gather(self, mine: torch.Tensor, tag: int) -> Any:
        """Stage 3, posted: all-gather the chunks in member order inside the host (None for one member)."""
        L, me, sizes = self.L, self.me, self.sizes
        if L == 1:
            return None
        return duplex.start(mine.repeat(L), [sizes[me]] * L, sizes, self.intra_group, self.labels[0],
                            self.op + ".ag", kind="sync", tag=tag)

    def write(self, full: torch.Tensor) -> torch.Tensor:
        """Write the gathered sum (mean with ``average``) into the tensor; returns it."""
        if self.average:
            n = self.L * dist.get_world_size(self.peer_group)
            full = full / n if full.is_floating_point() else full // n
        with torch.no_grad():
            self.tensor.copy_(full.view_as(self.tensor))
        return self.tensor


def start_hierarchical_all_reduce_(
    tensor: torch.Tensor, intra_group: Any, peer_group: Any, *, average: bool = False,
    op: str = "hier_all_reduce", labels: tuple[str, str] = ("intra", "cross"), tag: int = 0,
) -> HierarchicalAllReduce:
    """Post the in-host reduce-scatter of :func:`hierarchical_all_reduce_` and return; ``wait()``
    finishes it (so the first stage overlaps whatever the caller does meanwhile)."""
    return HierarchicalAllReduce(tensor, intra_group, peer_group, average, op, labels, tag)
