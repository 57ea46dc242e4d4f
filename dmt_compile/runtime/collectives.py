"""Differentiable, instrumented collectives: all-to-all of rows, jagged ids, all-gather, all-reduce.

Every all-to-all goes through :func:`dmt_compile.runtime.duplex.exchange`: on gloo a full-duplex
point-to-point exchange (every receive posted before any send; gloo's ``all_to_all_single``
runs a two-member exchange one direction at a time), on NCCL ``all_to_all_single``. So the
same code runs on gloo (CPU tensors) and NCCL (CUDA tensors). :func:`~dmt_compile.runtime.hierarchical_all_reduce.hierarchical_all_reduce_`
is the topology-aware all-reduce for data-parallel parameters (reduce-scatter inside the host,
all-reduce across hosts, all-gather inside).

Conventions, for a group of ``g`` ranks in which this rank has index ``me = dist.get_rank(group)``
(``group=None`` is the world):

* ``send_counts[j]`` is the number of **rows** (entries along dim 0) of the input that go to group
  member ``j``; the input holds the blocks for members ``0, 1, ..., g-1`` back to back, so
  ``sum(send_counts) == x.shape[0]``. Block ``me`` stays on this rank (it is copied, not sent).
* ``recv_counts[j]`` is the number of rows this rank receives from member ``j``; it must equal
  member ``j``'s ``send_counts[me]``. The output holds the received blocks in member order.
  Pass ``recv_counts=None`` to learn them with :func:`exchange_counts` (one extra small exchange).
* Every call must be made by every member of the group, in the same order (SPMD).
* ``label`` names the group in :mod:`~dmt_compile.runtime.comm_stats` (``"cross"``, ``"intra"``,
  ``"world"``); ``op`` names the kind of exchange. Backward exchanges are counted as ``op + ".bwd"``.
  ``hosts`` (the host of each group member), where given, also splits the bytes into
  ``label:cross-host`` / ``label:intra-host`` (the flat baseline's world exchanges).
* A failing exchange (peer died, timeout) raises :class:`~dmt_compile.errors.CollectiveError`
  naming the rank, label and op; bad arguments raise it before any communication.
"""
from __future__ import annotations

import logging
import time
from typing import Any, NamedTuple, Sequence

import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError
from dmt_compile.runtime import comm_stats, duplex

__all__ = ["all_to_all_rows", "exchange_counts", "all_to_all_jagged", "JaggedExchange", "all_gather_rows",
           "all_reduce_", "all_reduce_grads", "all_reduce_mean_grads",
           "all_reduce_sum_grads"]

logger = logging.getLogger(__name__)

_group_info, _comm_device, _fail, _check_counts = duplex.group_info, duplex.comm_device, duplex.fail, duplex.check_counts
_a2a_impl = duplex.exchange  # the helpers live in duplex.py


# --------------------------------------------------------------------------- counts


def exchange_counts(
    send_counts: Sequence[int] | Sequence[Sequence[int]] | torch.Tensor,
    group: Any = None,
    label: str = "world",
    *,
    op: str = "counts",
    hosts: Sequence[int] | None = None,
) -> list[int] | list[list[int]]:
    """Tell every member how much this rank sends it; return what each member sends this rank.

    ``send_counts`` is ``[g]`` (one int per member) or ``[g][k]`` (k ints per member, e.g. samples
    and values). Returns the received counts with the same shape as Python ints:
    ``result[j]`` is member ``j``'s ``send_counts[me]``. One int64 ``all_to_all_single``.
    """
    size, _ = _group_info(group)
    t = torch.as_tensor(send_counts, dtype=torch.int64)
    if t.dim() not in (1, 2) or t.shape[0] != size:
        raise CollectiveError(
            f"exchange_counts on group {label!r}: send_counts has shape {tuple(t.shape)}, "
            f"expected [{size}] or [{size}, k]",
            "give one count (or one row of counts) per group member",
        )
    out = _a2a_impl(t.to(_comm_device(group)), [1] * size, [1] * size, group, label, op, hosts)
    return out.cpu().tolist()


# --------------------------------------------------------------------------- rows (autograd)


class _AllToAllRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, send, recv, group, label, op, hosts):  # type: ignore[override]
        ctx.send, ctx.recv, ctx.group, ctx.label, ctx.op, ctx.hosts = send, recv, group, label, op, hosts
        return _a2a_impl(x, send, recv, group, label, op, hosts)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        grad_in = _a2a_impl(grad_out, ctx.recv, ctx.send, ctx.group, ctx.label, ctx.op + ".bwd", ctx.hosts)
        return grad_in, None, None, None, None, None, None


def all_to_all_rows(
    x: torch.Tensor,
    send_counts: Sequence[int],
    recv_counts: Sequence[int] | None = None,
    group: Any = None,
    label: str = "world",
    *,
    op: str = "a2a_rows",
    check_counts: bool = False,
    hosts: Sequence[int] | None = None,
) -> torch.Tensor:
    """Send row block ``j`` of ``x`` (``send_counts[j]`` rows) to group member ``j``; differentiable.

    ``x`` has any shape ``[R, *trailing]`` and dtype; returns ``[sum(recv_counts), *trailing]`` with
    the blocks received from members ``0..g-1`` back to back. Zero counts are fine. Backward sends
    the output gradient back the reverse way (block ``j`` of the gradient returns to member ``j``),
    so ``x.grad`` is exactly the gradient of the rows this rank sent. ``recv_counts=None`` exchanges
    counts first; ``check_counts=True`` exchanges them anyway and raises on a mismatch.
    """
    size, _ = _group_info(group)
    if x.dim() < 1:
        raise CollectiveError(f"{op} on group {label!r}: x must have at least 1 dim", "pass rows along dim 0")
    send = _check_counts("send_counts", send_counts, size, label, op)
    if sum(send) != x.shape[0]:
        raise CollectiveError(
            f"{op} on group {label!r}: send_counts {send} sum to {sum(send)} but x has {x.shape[0]} rows",
            "send_counts must partition the rows of x",
        )
    if recv_counts is None or check_counts:
        learned = exchange_counts(send, group, label, op=op + ".counts")
        if recv_counts is not None:
            given = _check_counts("recv_counts", recv_counts, size, label, op)
            # agree on the verdict so that every member raises (nobody is left waiting in the exchange)
            flag = torch.tensor([int(given != learned)], dtype=torch.int64, device=_comm_device(group))
            try:
                dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=group)
            except RuntimeError as exc:
                raise _fail(label, op + ".check", exc) from exc
            if given != learned:
                raise CollectiveError(
                    f"rank {dist.get_rank()}: {op} on group {label!r}: recv_counts {given} differ "
                    f"from what the members send {learned}",
                    "recv_counts[j] must equal member j's send_counts[my index]",
                )
            if int(flag.item()):
                raise CollectiveError(
                    f"rank {dist.get_rank()}: {op} on group {label!r}: another member's recv_counts differ "
                    "from what is sent to it (see that rank's error)",
                    "recv_counts[j] must equal member j's send_counts[my index]",
                )
        recv = list(learned)
    else:
        recv = _check_counts("recv_counts", recv_counts, size, label, op)
    return _AllToAllRows.apply(x, send, recv, group, label, op, hosts)


# --------------------------------------------------------------------------- jagged ids


class JaggedExchange(NamedTuple):
    """What :func:`all_to_all_jagged` received, in member order."""

    values: torch.Tensor  # [sum(value_counts)] concatenated ids
    lengths: torch.Tensor  # [sum(segments)] per-sample (per-bag) lengths
    segments: list[int]  # segments[j]: number of lengths entries received from member j
    value_counts: list[int]  # value_counts[j]: number of values received from member j
    weights: torch.Tensor | None  # per-value weights, if sent


def all_to_all_jagged(
    values: torch.Tensor,
    lengths: torch.Tensor,
    send_segments: Sequence[int],
    group: Any = None,
    label: str = "world",
    *,
    weights: torch.Tensor | None = None,
    op: str = "jagged",
    hosts: Sequence[int] | None = None,
) -> JaggedExchange:
    """Exchange variable-length id lists (no autograd).

    ``lengths`` (1-D int) holds one entry per sample (or per feature x sample bag) and ``values``
    (1-D) their concatenated ids, so ``lengths.sum() == len(values)``. The entries of ``lengths`` are
    ordered by destination: the first ``send_segments[0]`` go to member 0, the next
    ``send_segments[1]`` to member 1, ...; their values go along. Optional ``weights`` (same length
    as ``values``, e.g. per-id weights) travel with the values. Three or four exchanges, counted
    as ``op + ".counts" / ".lengths" / ".values" / ".weights"``.
    """
    size, _ = _group_info(group)
    seg = _check_counts("send_segments", send_segments, size, label, op)
    if lengths.dim() != 1 or values.dim() != 1:
        raise CollectiveError(
            f"{op} on group {label!r}: lengths and values must be 1-D, got {tuple(lengths.shape)} "
            f"and {tuple(values.shape)}",
            "flatten the jagged tensor to (values, lengths)",
        )
    if sum(seg) != lengths.numel():
        raise CollectiveError(
            f"{op} on group {label!r}: send_segments {seg} sum to {sum(seg)} but lengths has {lengths.numel()} entries",
            "send_segments must partition lengths",
        )
    if lengths.numel():
        # value count per destination: sum of lengths in each segment
        per_dest = torch.zeros(size, dtype=torch.int64)
        dest = torch.repeat_interleave(torch.arange(size), torch.tensor(seg, dtype=torch.int64))
        per_dest.index_add_(0, dest, lengths.detach().to("cpu", torch.int64))
        nvals = per_dest.tolist()
    else:
        nvals = [0] * size
    if sum(nvals) != values.numel():
        raise CollectiveError(
            f"{op} on group {label!r}: lengths sum to {sum(nvals)} but there are {values.numel()} values",
            "lengths.sum() must equal len(values)",
        )
    if weights is not None and weights.shape != values.shape:
        raise CollectiveError(
            f"{op} on group {label!r}: weights shape {tuple(weights.shape)} != values shape {tuple(values.shape)}",
            "give one weight per value",
        )
    counts = exchange_counts([[s, n] for s, n in zip(seg, nvals)], group, label, op=op + ".counts", hosts=hosts)
    recv_seg = [c[0] for c in counts]
    recv_vals = [c[1] for c in counts]
    out_lengths = _a2a_impl(lengths, seg, recv_seg, group, label, op + ".lengths", hosts)
    out_values = _a2a_impl(values, nvals, recv_vals, group, label, op + ".values", hosts)
    out_weights = None
    if weights is not None:
        out_weights = _a2a_impl(weights.detach(), nvals, recv_vals, group, label, op + ".weights", hosts)
    return JaggedExchange(out_values, out_lengths, recv_seg, recv_vals, out_weights)


# --------------------------------------------------------------------------- all_gather (autograd)


class _AllGatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, counts, group, label, op):  # type: ignore[override]
        size, _ = _group_info(group)
        n = x.shape[0]
        ctx.n, ctx.size, ctx.counts, ctx.group, ctx.label, ctx.op = n, size, counts, group, label, op
        return _a2a_impl(torch.cat([x] * size) if size > 1 else x, [n] * size, counts, group, label, op)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        g = _a2a_impl(grad_out, ctx.counts, [ctx.n] * ctx.size, ctx.group, ctx.label, ctx.op + ".bwd")
        return g.view(ctx.size, ctx.n, *g.shape[1:]).sum(0), None, None, None, None


def all_gather_rows(
    x: torch.Tensor,
    group: Any = None,
    label: str = "world",
    *,
    counts: Sequence[int] | None = None,
    op: str = "all_gather_rows",
) -> torch.Tensor:
    """Concatenate every member's ``x`` along dim 0 in member order (row counts may differ); differentiable.

    ``counts[j]`` is member ``j``'s row count (learned with one count exchange when None).
    Backward sums, for this rank's rows, the gradients all members computed for them.
    """
    size, _ = _group_info(group)
    if counts is None:
        counts = exchange_counts([x.shape[0]] * size, group, label, op=op + ".counts")
    counts = _check_counts("counts", counts, size, label, op)
    return _AllGatherRows.apply(x, counts, group, label, op)


# --------------------------------------------------------------------------- all_reduce


def _record_all_reduce(numel: int, element_size: int, group: Any, label: str, op: str, start: float) -> None:
    size, me = _group_info(group)
    chunks = [numel // size + (1 if i < numel % size else 0) for i in range(size)]
    delta = comm_stats.Counters(calls=1)
    per_member = [0] * size
    for j in range(size):
        if j == me:
            continue
        for c in (chunks[j], chunks[me]):  # reduce-scatter chunk j to j, all-gather my chunk to j
            if c:
                delta.bytes_sent += c * element_size
                delta.messages_sent += 1
                per_member[j] += c * element_size
    delta.bytes_recv, delta.messages_recv = delta.bytes_sent, delta.messages_sent
    comm_stats.get_comm_stats().add(label, op, delta)
    if comm_stats.observed():
        comm_stats.notify(comm_stats.ExchangeEvent("sync", label, op, group, tuple(per_member), tuple(per_member),
                                                   start, time.perf_counter()))


def all_reduce_(
    tensor: torch.Tensor, group: Any = None, label: str = "world", *, average: bool = False, op: str = "all_reduce"
) -> torch.Tensor:
    """In-place sum (or mean with ``average=True``) of ``tensor`` over the group (no autograd); returns it."""
    start = time.perf_counter()
    try:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=group)
    except RuntimeError as exc:
        raise _fail(label, op, exc) from exc
    _record_all_reduce(tensor.numel(), tensor.element_size(), group, label, op, start)
    if average:
        tensor.div_(dist.get_world_size(group))
    return tensor


def all_reduce_grads(
    params: Sequence[torch.nn.Parameter] | Any,
    group: Any = None,
    label: str = "intra",
    *,
    average: bool = True,
    op: str = "grads",
) -> int:
    """Sum or average ``.grad`` of ``params`` over the group (host-local DDP sync); returns elements reduced.

    ``params`` must list the same parameters in the same order on every member. Parameters with
    ``requires_grad=False`` are skipped. A missing ``.grad`` counts as zeros; it stays ``None`` only if
    it is missing on every member. One flat all_reduce per (device, dtype) bucket; a presence flag per
    parameter rides in the same buffer. ``average`` divides by the group size (DDP semantics).
    """
    params = [p for p in params if p.requires_grad]
    size, _ = _group_info(group)
    buckets: dict[tuple[torch.device, torch.dtype], list[torch.nn.Parameter]] = {}
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            raise CollectiveError(
                f"all_reduce_grads on group {label!r}: parameter of shape {tuple(p.shape)} has a sparse grad",
                "keep sparse (embedding) gradients on the table owner; reduce dense grads only",
            )
        buckets.setdefault((p.device, p.dtype), []).append(p)
    total = 0
    for (device, dtype), ps in buckets.items():
        parts = [p.grad.detach().reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=dtype, device=device) for p in ps]
        flags = torch.tensor([1.0 if p.grad is not None else 0.0 for p in ps], dtype=dtype, device=device)
        buf = torch.cat(parts + [flags])
        all_reduce_(buf, group, label, op=op)
        numel = buf.numel() - len(ps)
        if average:
            buf[:numel].div_(size)
        offset = 0
        for i, p in enumerate(ps):
            chunk = buf[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
            if p.grad is not None:
                p.grad.copy_(chunk)
            elif float(buf[numel + i]) > 0:
                p.grad = chunk.clone()
        total += numel
    return total


def all_reduce_mean_grads(params: Sequence[torch.nn.Parameter] | Any, group: Any = None, label: str = "intra") -> int:
    """:func:`all_reduce_grads` with ``average=True``."""
    return all_reduce_grads(params, group, label, average=True)


def all_reduce_sum_grads(params: Sequence[torch.nn.Parameter] | Any, group: Any = None, label: str = "intra") -> int:
    """:func:`all_reduce_grads` with ``average=False``."""
    return all_reduce_grads(params, group, label, average=False)
