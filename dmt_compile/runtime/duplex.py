"""The all-to-all primitive under every exchange: full duplex on gloo, ``all_to_all_single`` elsewhere.

Why not ``all_to_all_single`` on gloo: gloo's tcp transport is rendezvous-based. A send of an
unbound buffer only goes on the wire after the receiver's "ready to receive" notice has arrived,
and that notice travels in the **same** per-pair queue and TCP stream as payload.
``gloo::alltoallv`` posts each peer's send before its receive, so the rank that posts second
already holds its peer's notice, writes its whole payload, and its own notice waits behind that
payload: the peer cannot start sending until the payload is through. On a two-member peer group
the exchange runs one direction, then the other (half duplex: 2.82 s instead of 1.44 s for
16 MiB each way at 100 Mbit/s, measured on the emulated 2x2 hosts of docs/BENCHMARKS.md).

The fix used here (:func:`post`): point-to-point on the same group, **every receive posted before
any send**, so every notice leaves ahead of any payload; then the sends; then wait. No extra
process group or connection. Zero counts post nothing on either end (both ends agree because
``recv_counts[j]`` equals member j's ``send_counts[me]``). :func:`post` returns a
:class:`Pending` handle, so a caller can overlap the transfer with compute (ids of the next
batch); give such overlapped exchanges their own ``tag`` (gloo matches point-to-point messages
per (pair, tag) in posting order).

``mode()`` chooses the implementation: ``DMT_ALL_TO_ALL=auto`` (default: point-to-point on gloo,
``all_to_all_single`` on NCCL), ``p2p`` or ``collective`` (always ``all_to_all_single``; the
half-duplex behaviour, for comparisons). :func:`use_mode` switches it inside a block.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError
from dmt_compile.runtime import comm_stats

__all__ = ["MODES", "mode", "use_mode", "uses_p2p", "post", "Pending", "exchange", "start", "finish",
           "group_info", "comm_device", "fail", "check_counts", "row_bytes"]

MODES = ("auto", "p2p", "collective")
_mode: list[str | None] = [None]  # None: the environment decides (read at each call, after launch sets it)


def _check_mode(name: str, where: str) -> str:
    if name not in MODES:
        raise CollectiveError(f"{where}: unknown all-to-all mode {name!r}",
                              f"use one of {', '.join(MODES)} (auto: full-duplex point-to-point on gloo)")
    return name


def mode() -> str:
    """The active implementation choice (``auto``, ``p2p`` or ``collective``)."""
    return _mode[0] or os.environ.get("DMT_ALL_TO_ALL", "auto")


@contextlib.contextmanager
def use_mode(name: str) -> Iterator[None]:
    """Use implementation ``name`` inside the block (every rank must choose the same)."""
    _check_mode(name, "use_mode")
    previous, _mode[0] = _mode[0], name
    try:
        yield
    finally:
        _mode[0] = previous


def uses_p2p(group: Any) -> bool:
    """Whether exchanges on ``group`` run as recv-first point-to-point (see module docstring)."""
    m = _check_mode(mode(), "DMT_ALL_TO_ALL")
    if m == "auto":
        return str(dist.get_backend(group)).lower() == "gloo"
    return m == "p2p"


def group_info(group: Any) -> tuple[int, int]:
    """(size, my index) of ``group`` (None: the world)."""
    return dist.get_world_size(group), dist.get_rank(group)


def comm_device(group: Any) -> torch.device:
    """Where the backend of ``group`` wants its tensors (NCCL: the current CUDA device)."""
    if str(dist.get_backend(group)).lower() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def fail(label: str, op: str, exc: BaseException) -> CollectiveError:
    rank = dist.get_rank() if dist.is_initialized() else -1
    return CollectiveError(
        f"rank {rank}: collective {op!r} on group {label!r} failed: {type(exc).__name__}: {exc}",
        "another rank probably crashed, exited or hung; check that rank's error and log",
    )


def check_counts(name: str, counts: Sequence[int], size: int, label: str, op: str) -> list[int]:
    out = [int(c) for c in counts]
    if len(out) != size:
        raise CollectiveError(
            f"{op} on group {label!r}: {name} has {len(out)} entries but the group has {size} ranks",
            f"give one count per group member ({size})",
        )
    if any(c < 0 for c in out):
        raise CollectiveError(f"{op} on group {label!r}: negative entry in {name} {out}", "counts are >= 0")
    return out


def row_bytes(x: torch.Tensor) -> int:
    return math.prod(x.shape[1:]) * x.element_size()


def _offsets(counts: Sequence[int]) -> list[int]:
    out, acc = [], 0
    for c in counts:
        out.append(acc)
        acc += c
    return out


class Pending:
    """An exchange in flight: :meth:`wait` returns the received rows (member order), once."""

    def __init__(self, out: torch.Tensor, works: list[Any], keep: Any = None):
        self.out, self._works, self._keep = out, works, keep  # keep: the send buffer lives until done
        self._on_done: Any = None

    def wait(self) -> torch.Tensor:
        works, self._works = self._works, []
        for w in works:
            w.wait()
        self._keep = None
        if self._on_done is not None:
            done, self._on_done = self._on_done, None
            done()
        return self.out


def post(x: torch.Tensor, send: Sequence[int], recv: Sequence[int], group: Any, *, tag: int = 0) -> Pending:
    """Start the exchange of row blocks of ``x`` (counts already validated); returns a :class:`Pending`.

    Point-to-point on gloo (receives first, then sends), or one async ``all_to_all_single``.
    """
    x = x.contiguous()
    out = x.new_empty((sum(recv), *x.shape[1:]))
    if not uses_p2p(group):
        work = dist.all_to_all_single(out, x, output_split_sizes=list(recv), input_split_sizes=list(send),
                                      group=group, async_op=True)
        return Pending(out, [work], x)
    g, me = dist.get_world_size(group), dist.get_rank(group)
    so, ro = _offsets(send), _offsets(recv)
    order = [(me + i) % g for i in range(1, g)]  # start with the next member: spreads the load
    works = []
    for j in order:  # 1) every receive: its "ready" notice leaves before any payload of ours
        if recv[j]:
            works.append(dist.irecv(out[ro[j]:ro[j] + recv[j]], group=group, group_src=j, tag=tag))
    for j in order:  # 2) the sends
        if send[j]:
            works.append(dist.isend(x[so[j]:so[j] + send[j]], group=group, group_dst=j, tag=tag))
    if recv[me]:
        out[ro[me]:ro[me] + recv[me]].copy_(x[so[me]:so[me] + send[me]])
    return Pending(out, works, x)


class _Recorded(Pending):
    """A :class:`Pending` whose wait counts the exchange (CommStats, observers) and types failures."""

    def __init__(self, inner: Pending, label: str, op: str, **record: Any):
        super().__init__(inner.out, inner._works, inner._keep)
        self.label, self.op, self._record = label, op, record

    def wait(self) -> torch.Tensor:
        t_wait = time.perf_counter()
        try:
            out = super().wait()
        except RuntimeError as exc:
            raise fail(self.label, self.op, exc) from exc
        r = self._record
        from dmt_compile.runtime.overlap_stats import record_overlap

        record_overlap(self.label, self.op, t_wait - r["start"], time.perf_counter() - t_wait)
        comm_stats.record(self.label, self.op, r["sent"], r["got"], r["me"], r["hosts"])
        if comm_stats.observed():
            comm_stats.notify(comm_stats.ExchangeEvent(r["kind"], self.label, self.op, r["group"],
                                                       tuple(r["sent"]), tuple(r["got"]), r["start"],
                                                       time.perf_counter()))
        return out


def start(x: torch.Tensor, send: list[int], recv: list[int], group: Any, label: str, op: str,
          hosts: Sequence[int] | None = None, kind: str = "exchange", tag: int = 0) -> Pending:
    """:func:`post`, instrumented: the returned handle's ``wait()`` records the exchange in
    :mod:`~dmt_compile.runtime.comm_stats` (and tells observers) and raises
    :class:`~dmt_compile.errors.CollectiveError` if it failed."""
    t0 = time.perf_counter()
    try:
        inner = post(x, send, recv, group, tag=tag)
    except RuntimeError as exc:
        raise fail(label, op, exc) from exc
    rb = row_bytes(x)
    return _Recorded(inner, label, op, sent=[c * rb for c in send], got=[c * rb for c in recv],
                     me=dist.get_rank(group), hosts=hosts, kind=kind, group=group, start=t0)


def exchange(x: torch.Tensor, send: list[int], recv: list[int], group: Any, label: str, op: str,
             hosts: Sequence[int] | None = None, kind: str = "exchange", tag: int = 0) -> torch.Tensor:
    """Blocking, instrumented all-to-all of row blocks on dim 0 (:func:`start` + wait)."""
    return start(x, send, recv, group, label, op, hosts, kind, tag=tag).wait()


class _Finish(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pending, send, recv, group, label, op, hosts):  # type: ignore[override]
        ctx.args = (send, recv, group, label, op, hosts)
        return pending.wait()

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        send, recv, group, label, op, hosts = ctx.args
        return (exchange(grad_out, recv, send, group, label, op + ".bwd", hosts),) + (None,) * 7


def finish(x: torch.Tensor, pending: Pending, send: list[int], recv: list[int], group: Any, label: str,
           op: str, hosts: Sequence[int] | None = None) -> torch.Tensor:
    """Wait for ``pending = start(x, send, recv, ...)``; differentiable in ``x``: backward sends the
    gradient of the received rows back (synchronously, counted as ``op + ".bwd"``), so compute
    placed between :func:`start` and :func:`finish` overlaps the forward transfer."""
    return _Finish.apply(x, pending, send, recv, group, label, op, hosts)
