"""Gradient synchronisation during `backward()`: DDP-style buckets, launched in order as they fill.

Semantics (the same as `ShardedDmt.sync_gradients`): every rank's loss is a mean over its local
batch, and the gradients become those of the mean loss over the global batch:

* dense parameters: summed over the world and divided by W (`"world"`);
* Tower-Module parameters: summed over the host and divided by W (`"intra"`; host t saw every
  sample of its tower); under the flat baseline their tower spans the world, so like dense;
* embedding tables and row shards: divided by W on their owner, no communication.

How: a hook on each parameter receives the *fresh* gradient of this backward before it is
accumulated into `.grad`. Tables return it divided by W. Replicated parameters copy it into
their bucket (and let zeros accumulate where `.grad` already holds a gradient); a bucket whose
parameters have all arrived is
all-reduced asynchronously (gloo and NCCL run it while autograd continues), buckets strictly in
index order so every rank issues the same collectives in the same order. A callback queued on
the autograd engine runs when backward ends: it launches the buckets still waiting (a parameter
without a gradient counts as zeros, with a presence flag riding in the buffer: a gradient stays
`None` only if it is missing on every rank), waits, and adds each reduced gradient into `.grad`.
Because only the fresh gradient is reduced, gradients accumulated over several `backward()` calls
are exact. Inside `no_sync()` nothing is communicated; the next synchronising backward reduces
the gradient accumulated locally since then.

A spec with a `hierarchy` reduces each bucket with the hierarchical all-reduce: its in-host
reduce-scatter starts at launch; the cross-host all-reduce and the all-gather run when the bucket
is waited for, or, with `chained`, on a helper thread as soon as the reduce-scatter is in
(`runtime/hierarchical_chain.py`), so all three stages overlap the rest of backward.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError
from dmt_compile.runtime.collectives import _record_all_reduce
from dmt_compile.runtime.hierarchical_all_reduce import start_hierarchical_all_reduce_
from dmt_compile.runtime.hierarchical_chain import HierarchicalChain, chain_supported
from dmt_compile.runtime.tags import SYNC_TAG

__all__ = ["GradReducer", "ReduceSpec", "backward_order"]

@dataclass(frozen=True)
class ReduceSpec:
    """Parameters synchronised over one group, in the order backward is expected to produce them."""

    label: str  # comm_stats label: "world" | "intra"
    group: Any
    params: tuple[torch.nn.Parameter, ...]
    op: str  # comm_stats op name
    #: (intra-host group, cross-host peer group): reduce each bucket with the topology-aware
    #: hierarchical all-reduce (reduce-scatter in the host, all-reduce across, all-gather in) instead
    #: of one all-reduce over `group`; it runs when the bucket launches (blocking, still during backward)
    hierarchy: tuple[Any, Any] | None = None
    #: with `hierarchy`: run its cross-host all-reduce and all-gather as an asynchronous chain during
    #: backward (`runtime/hierarchical_chain.py`), where the backend allows it; else when waited for
    chained: bool = False


@dataclass
class _Bucket:
    spec: ReduceSpec
    params: list[torch.nn.Parameter]
    offsets: list[int]
    numel: int
    buf: torch.Tensor | None = None
    arrived: set[int] = field(default_factory=set)
    work: Any = None
    launched: bool = False


def backward_order(gm: torch.fx.GraphModule, params: Sequence[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """`params` in reverse order of first use by the graph: roughly the order backward produces them."""
    wanted = {id(p): p for p in params}
    seen: list[torch.nn.Parameter] = []
    for node in gm.graph.nodes:
        if node.op == "call_module":
            found = list(gm.get_submodule(node.target).parameters())
        elif node.op == "get_attr":
            value = gm.get_parameter(node.target) if node.target in dict(gm.named_parameters()) else None
            found = [value] if value is not None else []
        else:
            continue
        for p in found:
            if id(p) in wanted and all(p is not q for q in seen):
                seen.append(p)
    seen += [p for p in params if all(p is not q for q in seen)]
    return list(reversed(seen))


class GradReducer:
    """Hooks that synchronise gradients during backward (module docstring)."""

    def __init__(self, specs: Sequence[ReduceSpec], local: Sequence[torch.nn.Parameter], world: int,
                 bucket_cap_mb: float = 25.0):
        self.world = world
        self.enabled = True
        self.buckets: list[_Bucket] = []
        self._slot: dict[int, tuple[int, int]] = {}  # id(param) -> (bucket index, index in bucket)
        self._pending_local: set[int] = set()  # params holding an unsynchronised gradient (no_sync)
        self._replace: set[int] = set()  # params whose .grad was None: the reduced gradient replaces the local one
        self._queued = False
        self._chains: dict[int, HierarchicalChain] = {}  # per spec (by id) during one backward
        self._handles = []
        self.launches = {"during_backward": 0, "at_end": 0}  # where buckets started (overlap, for tests)
        cap = max(1, int(bucket_cap_mb * 2 ** 20))
        for spec in specs:
            self._make_buckets(spec, cap)
        for p in local:
            if p.requires_grad:
                self._handles.append(p.register_hook(self._scale_local))
        for b in self.buckets:
            for p in b.params:
                self._handles.append(p.register_hook(self._hook_for(p)))

    def _make_buckets(self, spec: ReduceSpec, cap: int) -> None:
        current: list[torch.nn.Parameter] = []
        size = 0
        for p in (p for p in spec.params if p.requires_grad):
            if p.is_sparse or p.layout != torch.strided:
                raise CollectiveError(f"replicated parameter of shape {tuple(p.shape)} is not dense",
                                      "keep sparse parameters in embedding tables")
            nbytes = p.numel() * p.element_size()
            if current and (size + nbytes > cap or p.dtype != current[0].dtype or p.device != current[0].device):
                self._add_bucket(spec, current)
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            self._add_bucket(spec, current)

    def _add_bucket(self, spec: ReduceSpec, params: list[torch.nn.Parameter]) -> None:
        offsets, n = [], 0
        for j, p in enumerate(params):
            offsets.append(n)
            n += p.numel()
            self._slot[id(p)] = (len(self.buckets), j)
        self.buckets.append(_Bucket(spec, params, offsets, n))

    # ------------------------------------------------------------------ hooks

    def _scale_local(self, grad: torch.Tensor) -> torch.Tensor:
        return grad / self.world

    def _hook_for(self, param: torch.nn.Parameter):
        def hook(grad: torch.Tensor) -> torch.Tensor:
            if not self.enabled:
                self._pending_local.add(id(param))
                return grad
            if grad.is_sparse:
                raise CollectiveError(f"replicated parameter of shape {tuple(param.shape)} got a sparse gradient",
                                      "use dense gradients outside embedding tables")
            bi, j = self._slot[id(param)]
            bucket = self.buckets[bi]
            if bucket.buf is None:
                bucket.buf = torch.zeros(bucket.numel + len(bucket.params), dtype=grad.dtype, device=grad.device)
            fresh = grad.detach().reshape(-1)
            if id(param) in self._pending_local and param.grad is not None:
                fresh = fresh + param.grad.detach().reshape(-1)
            bucket.buf[bucket.offsets[j]:bucket.offsets[j] + param.numel()].copy_(fresh)
            bucket.buf[bucket.numel + j] = 1
            bucket.arrived.add(j)
            self._queue_finalize()
            self._launch_ready()
            if param.grad is None or id(param) in self._pending_local:
                self._replace.add(id(param))  # .grad becomes the local gradient now, the reduced one at the end
                return grad
            return torch.zeros_like(grad)  # .grad keeps what it held; the reduced gradient is added at the end

        return hook

    def _queue_finalize(self) -> None:
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._finalize)

    def _launch_ready(self) -> None:
        for b in self.buckets:
            if b.launched:
                continue
            if len(b.arrived) < len(b.params):
                return  # strictly in index order: every rank issues the same collectives in the same order
            self._launch(b)
            self.launches["during_backward"] += 1

    def _launch(self, b: _Bucket) -> None:
        """Start the all_reduce of one bucket (asynchronous), or run its hierarchical all-reduce."""
        if b.buf is None:
            p = b.params[0]
            b.buf = torch.zeros(b.numel + len(b.params), dtype=p.dtype, device=p.device)
        if b.spec.hierarchy is not None:  # counted by the collective itself, per stage and link
            intra, peer = b.spec.hierarchy
            if b.spec.chained and chain_supported(intra, peer):  # all three stages run during backward
                chain = self._chains.get(id(b.spec))
                if chain is None:
                    chain = self._chains[id(b.spec)] = HierarchicalChain(intra, peer, op=b.spec.op)
                b.work = chain.submit(b.buf)
                b.launched = True
                return
            # the in-host reduce-scatter overlaps the rest of backward; the cross-host all-reduce and the
            # all-gather run when the bucket is waited for (in bucket order, like the launches). Own tag:
            # this rank's backward exchanges run on the same host group meanwhile
            b.work = start_hierarchical_all_reduce_(b.buf, intra, peer, op=b.spec.op, tag=SYNC_TAG)
            b.launched = True
            return
        start = time.perf_counter()
        try:
            b.work = dist.all_reduce(b.buf, op=dist.ReduceOp.SUM, group=b.spec.group, async_op=True)
        except RuntimeError as exc:
            raise _failed(b, exc) from exc
        # counted at launch (an observer sees the launch, not the completion, of an asynchronous bucket)
        _record_all_reduce(b.buf.numel(), b.buf.element_size(), b.spec.group, b.spec.label, b.spec.op, start)
        b.launched = True

    @torch.no_grad()
    def _finalize(self) -> None:
        self._queued = False
        done = False
        try:
            for b in self.buckets:
                if not b.launched:
                    self._launch(b)
                    self.launches["at_end"] += 1
            for b in self.buckets:
                try:
                    b.work.wait()
                except RuntimeError as exc:
                    raise _failed(b, exc) from exc
                self._unpack(b)
            done = True
        finally:
            if done:  # after a failure a helper may still wait for a dead peer: leave it (a daemon thread)
                for chain in self._chains.values():
                    chain.close()
            self._chains.clear()
            for b in self.buckets:
                b.buf, b.work, b.launched = None, None, False
                b.arrived.clear()

    def _unpack(self, b: _Bucket) -> None:
        values = b.buf[:b.numel].div_(self.world)
        flags = b.buf[b.numel:].tolist()
        for j, p in enumerate(b.params):
            if flags[j] == 0:
                continue  # no rank produced a gradient for it
            g = values[b.offsets[j]:b.offsets[j] + p.numel()].view_as(p)
            if p.grad is None:
                p.grad = g.clone()
            elif id(p) in self._replace:
                p.grad.copy_(g)
            else:
                p.grad.add_(g)
            self._pending_local.discard(id(p))
        self._replace.difference_update(id(p) for p in b.params)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _failed(b: _Bucket, exc: BaseException) -> CollectiveError:
    rank = dist.get_rank() if dist.is_initialized() else 0
    return CollectiveError(
        f"rank {rank}: gradient all_reduce over '{b.spec.label}' ({b.spec.op}, {b.numel} elements) failed: "
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        "another rank probably died or left the step early; see the first failing rank's error")

