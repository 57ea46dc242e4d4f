"""Time and count every exchange of a rank, for our runtime and for TorchRec.

Our runtime's collectives report each executed exchange to :mod:`~dmt_compile.runtime.comm_stats`
observers (:class:`~dmt_compile.runtime.comm_stats.ExchangeEvent`: group, bytes per member, wall
interval); on gloo they do not go through ``all_to_all_single`` (they are full-duplex
point-to-point). TorchRec's ``KJTAllToAll`` / ``PooledEmbeddingsAllToAll`` do, so for TorchRec
:class:`ExchangeTimer` patches ``torch.distributed.all_to_all_single`` while its step runs (an
``async_op=True`` call is timed until ``Work.wait()`` returns); it also times, without counting
bytes, TorchRec's ``reduce_scatter`` / ``all_gather`` (row-wise pooled embeddings and their
gradients). Either way it records, per step:

* the wall time inside the exchanges, each exchange's duration in call order (``call_s``: the
  report takes, per exchange, the rank that arrived last) and its interval (``spans``, with the
  bytes it sent to and received from other hosts, for the NIC trace);
* the payload bytes and non-empty messages this rank sends to / receives from every **other**
  rank of the group, split by link class: ``intra`` (same emulated host) and ``cross``;
* ``sync_s``: time in gradient reductions (``kind == "sync"``: all-reduce, hierarchical
  all-reduce). TorchRec's DDP reduces inside its C++ reducer, which is not seen (0).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.distributed as dist

from dmt_compile.runtime import comm_stats
from dmt_compile.runtime.comm_stats import Counters, host_split

__all__ = ["ExchangeTimer"]


@dataclass
class _Step:
    exchange_s: float = 0.0
    sync_s: float = 0.0
    call_s: list = field(default_factory=list)  # duration of each exchange, in call order
    spans: list = field(default_factory=list)  # (start, end, cross bytes sent, cross bytes received), perf_counter
    calls: int = 0
    links: dict[str, Counters] = field(default_factory=lambda: {"intra": Counters(), "cross": Counters()})


class _TimedWork(dist.Work):
    """Proxy of an async ``Work`` (a ``Work`` itself, for ``isinstance`` checks) that adds the time
    until ``wait()`` returns to the step."""

    def __init__(self, work: Any, timer: "ExchangeTimer", start: float, split: dict):
        super().__init__()
        self._work, self._timer, self._start, self._split, self._done = work, timer, start, split, False

    def wait(self, *args: Any, **kwargs: Any) -> Any:
        out = self._work.wait(*args, **kwargs)
        if not self._done:
            self._done = True
            self._timer._add_exchange(self._start, time.perf_counter(), self._split)
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


_current: list = [None]  # the timer that receives runtime events now
_TIMED_ONLY = ("reduce_scatter", "reduce_scatter_tensor", "all_gather", "all_gather_into_tensor")


def _dispatch(event: comm_stats.ExchangeEvent) -> None:
    timer = _current[0]
    if timer is not None:
        timer.on_event(event)


class ExchangeTimer:
    """``with timer.active(): step()`` records one step's exchanges; ``timer.new_step()`` closes it."""

    def __init__(self, local_size: int) -> None:
        self.steps: list[_Step] = []
        self.current = _Step()
        self.local_size = local_size
        self._ranks: dict[Any, list[int]] = {}

    @contextlib.contextmanager
    def active(self, patch_all_to_all: bool = False) -> Iterator["ExchangeTimer"]:
        """Route runtime events here; with ``patch_all_to_all`` also time ``dist.all_to_all_single`` (TorchRec)."""
        comm_stats.add_observer(_dispatch)
        previous, _current[0] = _current[0], self
        originals = {name: getattr(dist, name) for name in ("all_to_all_single", *_TIMED_ONLY)}
        if patch_all_to_all:
            dist.all_to_all_single = self._patched(originals["all_to_all_single"])
            for name in _TIMED_ONLY:
                setattr(dist, name, self._timed_only(originals[name]))
        try:
            yield self
        finally:
            for name, fn in originals.items():
                setattr(dist, name, fn)
            _current[0] = previous

    def _patched(self, orig: Any) -> Any:
        timer = self

        def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None, group=None,
                              async_op=False):
            split = timer._split(output, input, output_split_sizes, input_split_sizes, group)
            start = time.perf_counter()
            work = orig(output, input, output_split_sizes, input_split_sizes, group=group, async_op=async_op)
            if async_op and work is not None:
                return _TimedWork(work, timer, start, split)
            timer._add_exchange(start, time.perf_counter(), split)
            return work

        return all_to_all_single

    def _timed_only(self, orig: Any) -> Any:
        """TorchRec's reduce-scatter / all-gather (row-wise pooled embeddings): timed like an exchange,
        bytes not counted (gloo's algorithm decides what crosses the NIC; the row reads the NIC counters)."""
        timer = self

        def collective(*args: Any, **kwargs: Any) -> Any:
            split = {"cross-host": Counters(), "intra-host": Counters()}
            start = time.perf_counter()
            work = orig(*args, **kwargs)
            if kwargs.get("async_op") and work is not None:
                return _TimedWork(work, timer, start, split)
            timer._add_exchange(start, time.perf_counter(), split)
            return work

        return collective

    # ---- recording ---------------------------------------------------------------------
    def new_step(self) -> None:
        """Close the current step (append it) and start a new one."""
        self.steps.append(self.current)
        self.current = _Step()

    def discard(self) -> None:
        """Forget the current step and everything before it (after warm-up)."""
        self.steps.clear()
        self.current = _Step()

    def on_event(self, event: comm_stats.ExchangeEvent) -> None:
        if event.kind == "sync":
            self.current.sync_s += event.end - event.start
            return
        split = self._split_bytes(list(event.sent_bytes), list(event.recv_bytes), event.group)
        self._add_exchange(event.start, event.end, split)

    def _add_exchange(self, start: float, end: float, split: dict) -> None:
        step = self.current
        step.exchange_s += end - start
        step.call_s.append(end - start)
        step.spans.append((start, end, split["cross-host"].bytes_sent, split["cross-host"].bytes_recv))
        step.calls += 1
        step.links["cross"].add(split["cross-host"])
        step.links["intra"].add(split["intra-host"])

    def _group_ranks(self, group: Any) -> list[int]:
        if group not in self._ranks:
            if group is None or group is dist.group.WORLD:
                self._ranks[group] = list(range(dist.get_world_size()))
            else:
                self._ranks[group] = list(dist.get_process_group_ranks(group))
        return self._ranks[group]

    def _split_bytes(self, sent: list[int], recv: list[int], group: Any) -> dict:
        ranks = self._group_ranks(group)
        return host_split(sent, recv, ranks.index(dist.get_rank()), [r // self.local_size for r in ranks], calls=0)

    def _split(self, output: torch.Tensor, input: torch.Tensor, out_splits: Any, in_splits: Any, group: Any) -> dict:
        g = len(self._group_ranks(group))
        row_in = math.prod(input.shape[1:]) * input.element_size() if input.dim() else input.element_size()
        row_out = math.prod(output.shape[1:]) * output.element_size() if output.dim() else output.element_size()
        send = list(in_splits) if in_splits else [input.shape[0] // g] * g
        recv = list(out_splits) if out_splits else [output.shape[0] // g] * g
        return self._split_bytes([int(c) * row_in for c in send], [int(c) * row_out for c in recv], group)

    # ---- results -----------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        return [{"exchange_s": s.exchange_s, "sync_s": s.sync_s, "calls": s.calls, "call_s": list(s.call_s),
                 "spans": list(s.spans), "links": {k: v.as_dict() for k, v in s.links.items()}} for s in self.steps]
