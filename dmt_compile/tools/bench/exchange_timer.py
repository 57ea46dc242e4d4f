"""Time and count every embedding exchange of a rank, for any runtime that uses ``all_to_all_single``.

:class:`ExchangeTimer` patches ``torch.distributed.all_to_all_single`` in the calling process (our
runtime's collectives and TorchRec's ``KJTAllToAll`` / ``PooledEmbeddingsAllToAll`` all go through
it) and records, per call:

* the wall time spent inside the exchange: from the call to its return for a blocking call, and
  from the call to the end of ``Work.wait()`` for an ``async_op=True`` call (TorchRec);
  (``call_s`` keeps each exchange's duration in call order, so the report can take, per exchange,
  the rank that arrived last, i.e. the transfer time without the wait for slower ranks);
* the payload bytes and non-empty messages this rank sends to / receives from every **other**
  rank of the group, split by link class: ``intra`` (same emulated host) and ``cross`` (another
  host), using the group's global ranks and ``rank // local_size`` as the host.

Gradient all-reduces are timed separately by patching ``all_reduce`` (``sync`` time). Both are
the same for every strategy, so the numbers are comparable side by side. Collectives that are
not an all-to-all or an all-reduce (barriers, the plan fingerprint) are not counted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from dmt_compile.runtime.comm_stats import Counters, host_split

__all__ = ["ExchangeTimer"]


@dataclass
class _Step:
    exchange_s: float = 0.0
    sync_s: float = 0.0
    call_s: list = field(default_factory=list)  # duration of each exchange, in call order
    spans: list = field(default_factory=list)  # (start, end) of each exchange, time.perf_counter() (system-wide)
    calls: int = 0
    links: dict[str, Counters] = field(default_factory=lambda: {"intra": Counters(), "cross": Counters()})


class _TimedWork(dist.Work):
    """Proxy of an async ``Work`` (a ``Work`` itself, for ``isinstance`` checks) that adds the time
    until ``wait()`` returns to the step."""

    def __init__(self, work: Any, timer: "ExchangeTimer", start: float, kind: str):
        super().__init__()
        self._work, self._timer, self._start, self._kind, self._done = work, timer, start, kind, False

    def wait(self, *args: Any, **kwargs: Any) -> Any:
        out = self._work.wait(*args, **kwargs)
        if not self._done:
            self._done = True
            self._timer._add_time(self._kind, time.perf_counter() - self._start, self._start)
        return out

    def is_completed(self) -> bool:
        return self._work.is_completed()

    def is_success(self) -> bool:
        return self._work.is_success()

    def exception(self) -> Any:
        return self._work.exception()

    def result(self) -> Any:
        return self._work.result()

    def get_future(self) -> Any:
        return self._work.get_future()

    def synchronize(self) -> Any:
        return self._work.synchronize()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._work, name)


class ExchangeTimer:
    """``timer.install(local_size)``; ``timer.new_step()`` per step; ``timer.steps`` holds the records."""

    def __init__(self) -> None:
        self.steps: list[_Step] = []
        self.current = _Step()
        self.local_size = 1
        self._orig: dict[str, Any] = {}
        self._ranks: dict[Any, list[int]] = {}

    # ---- install / uninstall -----------------------------------------------------------
    def install(self, local_size: int) -> "ExchangeTimer":
        self.local_size = local_size
        self._orig = {"all_to_all_single": dist.all_to_all_single, "all_reduce": dist.all_reduce}
        orig_a2a, orig_ar = self._orig["all_to_all_single"], self._orig["all_reduce"]
        timer = self

        def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None,
                              async_op=False):
            timer._count(output, input, output_split_sizes, input_split_sizes, group)
            start = time.perf_counter()
            work = orig_a2a(output, input, output_split_sizes, input_split_sizes, group=group, async_op=async_op)
            if async_op and work is not None:
                return _TimedWork(work, timer, start, "exchange")
            timer._add_time("exchange", time.perf_counter() - start, start)
            return work

        def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
            start = time.perf_counter()
            work = orig_ar(tensor, op=op, group=group, async_op=async_op)
            if async_op and work is not None:
                return _TimedWork(work, timer, start, "sync")
            timer._add_time("sync", time.perf_counter() - start)
            return work

        dist.all_to_all_single = all_to_all_single
        dist.all_reduce = all_reduce
        return self

    def uninstall(self) -> None:
        for name, fn in self._orig.items():
            setattr(dist, name, fn)
        self._orig = {}

    # ---- recording ---------------------------------------------------------------------
    def new_step(self) -> None:
        """Close the current step (append it) and start a new one."""
        self.steps.append(self.current)
        self.current = _Step()

    def discard(self) -> None:
        """Forget the current step and everything before it (after warm-up)."""
        self.steps.clear()
        self.current = _Step()

    def _add_time(self, kind: str, seconds: float, start: float = 0.0) -> None:
        if kind == "exchange":
            self.current.exchange_s += seconds
            self.current.call_s.append(seconds)
            self.current.spans.append((start, start + seconds))
        else:
            self.current.sync_s += seconds

    def _group_ranks(self, group: Any) -> list[int]:
        key = group
        if key not in self._ranks:
            if group is None or group is dist.group.WORLD:
                self._ranks[key] = list(range(dist.get_world_size()))
            else:
                self._ranks[key] = list(dist.get_process_group_ranks(group))
        return self._ranks[key]

    def _count(self, output: torch.Tensor, input: torch.Tensor, out_splits: Any, in_splits: Any, group: Any) -> None:
        ranks = self._group_ranks(group)
        g = len(ranks)
        me = ranks.index(dist.get_rank())
        row_in = math.prod(input.shape[1:]) * input.element_size() if input.dim() else input.element_size()
        row_out = math.prod(output.shape[1:]) * output.element_size() if output.dim() else output.element_size()
        send = list(in_splits) if in_splits else [input.shape[0] // g] * g
        recv = list(out_splits) if out_splits else [output.shape[0] // g] * g
        self.current.calls += 1
        split = host_split([int(c) * row_in for c in send], [int(c) * row_out for c in recv], me,
                           [r // self.local_size for r in ranks], calls=0)
        self.current.links["cross"].add(split["cross-host"])
        self.current.links["intra"].add(split["intra-host"])

    # ---- results -----------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        return [{"exchange_s": s.exchange_s, "sync_s": s.sync_s, "calls": s.calls, "call_s": list(s.call_s), "spans": list(s.spans),
                 "links": {k: v.as_dict() for k, v in s.links.items()}} for s in self.steps]
