"""Per-rank, per-group instrumentation of the collectives in :mod:`dmt_compile.runtime.collectives`.

Every collective wrapper calls :func:`record` once per executed exchange (forward and, for the
differentiable ones, backward) with the number of bytes this rank sends to and receives from each
member of the group. The active :class:`CommStats` (one per process; swap it with :func:`recording`)
accumulates, per **label** (the caller's group name: ``"cross"``, ``"intra"``, ``"world"``, ...)
and per **(label, op)** (op names the exchange, e.g. ``"a2a_rows"``, ``"a2a_rows.bwd"``,
``"counts"``, ``"jagged.values"``):

``calls``
    number of executed collectives.
``bytes_sent`` / ``bytes_recv``
    payload bytes this rank sends to / receives from **other** ranks of the group
    (``numel * element_size`` of the blocks; the block a rank keeps for itself is never counted,
    nor are headers, padding or the transport's own protocol traffic).
``messages_sent`` / ``messages_recv``
    number of **other** ranks to which this rank sends / from which it receives a non-empty
    payload. ``messages`` in :meth:`CommStats.summary` is ``messages_sent``.

How each collective is modelled (algorithm-independent, so counts do not depend on gloo vs NCCL):

* all_to_all (rows, counts, jagged): exactly the blocks of the exchange.
* all_gather: this rank's block goes to every other rank; every other rank's block comes in.
* all_reduce of an ``n``-element buffer over ``g`` ranks: the direct reduce-scatter + all-gather
  model. The buffer is cut into ``g`` chunks as ``torch.tensor_split`` does; in the reduce-scatter
  this rank sends chunk ``j`` to rank ``j`` and in the all-gather it sends its own reduced chunk to
  every other rank (receives mirror that). So ``bytes_sent = (n - c_me + (g - 1) * c_me) * s`` and
  ``messages_sent`` counts the non-empty (peer, phase) payloads (up to ``2 (g - 1)``).

The counters are per process, i.e. per rank; gather them with ``torch.distributed.all_gather_object``
(or return :meth:`CommStats.snapshot` from a :func:`~dmt_compile.runtime.launch.launch_local` worker).

Observers (:func:`add_observer`) additionally see every executed collective as an
:class:`ExchangeEvent` with its wall-clock interval (``time.perf_counter``): the benchmark's
timer uses them to time exchanges that do not go through ``all_to_all_single``.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import asdict, dataclass
from typing import Iterator, Sequence

__all__ = [
    "Counters",
    "CommStats",
    "get_comm_stats",
    "recording",
    "record",
    "summary_table",
    "host_split",
    "ExchangeEvent",
    "add_observer",
    "observed",
    "notify",
]

logger = logging.getLogger(__name__)


@dataclass
class Counters:
    """Accumulated traffic of one label (or one (label, op)) on this rank."""

    calls: int = 0
    bytes_sent: int = 0
    bytes_recv: int = 0
    messages_sent: int = 0
    messages_recv: int = 0

    def add(self, other: "Counters") -> None:
        self.calls += other.calls
        self.bytes_sent += other.bytes_sent
        self.bytes_recv += other.bytes_recv
        self.messages_sent += other.messages_sent
        self.messages_recv += other.messages_recv

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class CommStats:
    """Traffic counters of one rank, keyed by group label and by (label, op).

    Thread-safe (autograd may run backward collectives on another thread).
    """

    def __init__(self, rank: int | None = None):
        self.rank = rank
        self._lock = threading.Lock()
        self._by_op: dict[tuple[str, str], Counters] = {}

    def record(
        self,
        label: str,
        op: str,
        sent_bytes: Sequence[int],
        recv_bytes: Sequence[int],
        my_index: int,
        *,
        calls: int = 1,
        hosts: Sequence[int] | None = None,
    ) -> None:
        """Add one collective: ``sent_bytes[j]`` / ``recv_bytes[j]`` bytes to / from group member ``j``.

        Entry ``my_index`` (this rank's own block) is ignored. With ``hosts`` (the host of each
        member) the bytes are also counted under ``label:cross-host`` and ``label:intra-host``.
        """
        self.add(label, op, _counters(sent_bytes, recv_bytes, my_index, calls))
        if hosts is not None:
            for kind, counters in host_split(sent_bytes, recv_bytes, my_index, hosts, calls).items():
                self.add(f"{label}:{kind}", op, counters)

    def add(self, label: str, op: str, delta: Counters) -> None:
        """Add pre-computed counters under ``(label, op)``."""
        with self._lock:
            self._by_op.setdefault((label, op), Counters()).add(delta)
        logger.debug("comm %s/%s: %s", label, op, delta)

    def reset(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._by_op.clear()

    def labels(self) -> list[str]:
        with self._lock:
            return sorted({label for label, _ in self._by_op})

    def get(self, label: str, op: str | None = None) -> Counters:
        """Counters of ``label`` (summed over ops), or of ``(label, op)``; zeros if never seen."""
        out = Counters()
        with self._lock:
            for (lab, o), c in self._by_op.items():
                if lab == label and (op is None or o == op):
                    out.add(c)
        return out

    def snapshot(self, *, by_op: bool = False) -> dict[str, dict[str, int]]:
        """Plain, picklable dict ``{label: {calls, bytes_sent, bytes_recv, messages_sent, messages_recv}}``.

        With ``by_op=True`` the keys are ``"label/op"`` instead, one per kind of exchange.
        """
        with self._lock:
            items = list(self._by_op.items())
        out: dict[str, Counters] = {}
        for (label, op), c in items:
            key = f"{label}/{op}" if by_op else label
            out.setdefault(key, Counters()).add(c)
        return {k: out[k].as_dict() for k in sorted(out)}

    def summary(self, *, by_op: bool = False) -> list[dict[str, object]]:
        """Rows for ``tabulate(rows, headers="keys")``: one per label (or label/op) on this rank."""
        return _rows(self.rank, self.snapshot(by_op=by_op))

    def __repr__(self) -> str:
        return f"CommStats(rank={self.rank}, {self.snapshot()})"


def _counters(sent_bytes: Sequence[int], recv_bytes: Sequence[int], my_index: int, calls: int = 1) -> Counters:
    delta = Counters(calls=calls)
    for j, n in enumerate(sent_bytes):
        if j != my_index and n > 0:
            delta.bytes_sent += int(n)
            delta.messages_sent += 1
    for j, n in enumerate(recv_bytes):
        if j != my_index and n > 0:
            delta.bytes_recv += int(n)
            delta.messages_recv += 1
    return delta


def host_split(sent_bytes: Sequence[int], recv_bytes: Sequence[int], my_index: int, hosts: Sequence[int],
               calls: int = 1) -> dict[str, Counters]:
    """One exchange's counters split by link: ``cross-host`` (members on other hosts) and ``intra-host``."""
    mine = hosts[my_index]
    out = {}
    for kind, keep in (("cross-host", lambda h: h != mine), ("intra-host", lambda h: h == mine)):
        out[kind] = _counters([b if keep(hosts[j]) else 0 for j, b in enumerate(sent_bytes)],
                              [b if keep(hosts[j]) else 0 for j, b in enumerate(recv_bytes)], my_index, calls)
    return out


@dataclass(frozen=True)
class ExchangeEvent:
    """One executed collective as an observer sees it."""

    kind: str  # "exchange" (an all-to-all of the model's data) | "sync" (gradient reduction)
    label: str
    op: str
    group: object  # the ProcessGroup (None = world)
    sent_bytes: tuple  # bytes to each group member (own block included; observers skip it)
    recv_bytes: tuple
    start: float  # time.perf_counter() when the call started
    end: float  # ... and when its data had arrived


_observers: list = []


def add_observer(fn) -> None:
    """Call ``fn(event: ExchangeEvent)`` after every collective of the runtime (this process); idempotent."""
    if fn not in _observers:
        _observers.append(fn)


def observed() -> bool:
    return bool(_observers)


def notify(event: ExchangeEvent) -> None:
    for fn in list(_observers):
        fn(event)


_active: CommStats = CommStats()
_active_lock = threading.Lock()


def get_comm_stats() -> CommStats:
    """The recorder the collectives currently update (a process-wide default unless inside :func:`recording`)."""
    return _active


@contextlib.contextmanager
def recording(stats: CommStats | None = None) -> Iterator[CommStats]:
    """Route all collective counts to ``stats`` (a fresh :class:`CommStats` if None) inside the block.

    The previous recorder is restored on exit. Collectives whose backward runs after the block
    has exited are counted in whatever recorder is active then.
    """
    global _active
    if stats is None:
        rank = None
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                rank = dist.get_rank()
        except Exception:  # pragma: no cover - purely cosmetic
            rank = None
        stats = CommStats(rank)
    with _active_lock:
        previous, _active = _active, stats
    try:
        yield stats
    finally:
        with _active_lock:
            _active = previous


def record(label: str, op: str, sent_bytes: Sequence[int], recv_bytes: Sequence[int], my_index: int,
           hosts: Sequence[int] | None = None) -> None:
    """Record one collective in the active recorder (see :meth:`CommStats.record`)."""
    _active.record(label, op, sent_bytes, recv_bytes, my_index, hosts=hosts)


def _rows(rank: int | None, snapshot: dict[str, dict[str, int]]) -> list[dict[str, object]]:
    return [{"rank": rank, "group": key, "calls": c["calls"], "bytes_sent": c["bytes_sent"],
             "bytes_recv": c["bytes_recv"], "messages": c["messages_sent"], "messages_recv": c["messages_recv"]}
            for key, c in snapshot.items()]


def summary_table(snapshots: Sequence[dict[str, dict[str, int]]] | CommStats, *, tablefmt: str = "simple") -> str:
    """Render per-rank snapshots (index = rank) or one :class:`CommStats` as a text table."""
    from tabulate import tabulate

    if isinstance(snapshots, CommStats):
        rows = snapshots.summary()
    else:
        rows = [row for rank, snap in enumerate(snapshots) for row in _rows(rank, snap)]
    if not rows:
        return "(no collectives recorded)"
    return tabulate(rows, headers="keys", tablefmt=tablefmt)
