"""Compute terms of the cost model, measured: operator profiles and per-part step times.

* :func:`profile` runs code under a ``TorchDispatchMode`` and counts, per part (named from the
  enclosing modules, optional), the aten operators, their FLOPs (``torch.utils.flop_counter``'s
  formulas) and their memory traffic (bytes of every tensor argument and result; views and
  ``c10d`` collectives are free: communication is priced by the collective terms).
  :func:`roofline_seconds` prices a profile as ``flops / F + bytes / B_m + ops * tau`` (used to
  estimate the compute terms of a GPU cluster from FLOPs and kernel launches).
* :func:`time_parts` is the calibration micro-benchmark of the emulation: it runs a training
  step of one process a few times and measures, in CPU time of the calling thread (other jobs
  on the box do not inflate it), the forward + backward time, split over parts (dense, Tower
  Modules, decoders, lookups) in proportion to each part's measured forward time, and the
  optimizer step. A rank of a balanced SPTT or flat run does the same work as one process at
  the per-rank batch (its share of every lookup, Tower Module and the dense part), so these
  times feed the cost model's ``t_d``, ``t_t``, ``t_x``, ``t_l`` and ``t_o``.

Why measured and not FLOPs: on a CPU the operators of a recommendation model run at very
different rates (a batched 27x64 ``bmm`` at ~9 GFLOP/s against ~60 for a large GEMM; the
backward of advanced indexing at ~1 GB/s), so a three-constant roofline fitted on generic
micro-benchmarks missed the benchmark model's step by 30-80 % in our trials.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


__all__ = ["OpProfile", "OpCounter", "profile", "roofline_seconds", "PartTimes", "time_parts"]


@dataclass(frozen=True)
class OpProfile:
    """FLOPs, bytes of memory traffic and operator count of some computation."""

    flops: float = 0.0
    bytes: float = 0.0
    ops: float = 0.0

    def __add__(self, other: "OpProfile") -> "OpProfile":
        return OpProfile(self.flops + other.flops, self.bytes + other.bytes, self.ops + other.ops)

    def scaled(self, factor: float) -> "OpProfile":
        return OpProfile(self.flops * factor, self.bytes * factor, self.ops * factor)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _is_view(func: Any) -> bool:
    return any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def _tensor_bytes(tree: Any) -> int:
    return sum(t.numel() * t.element_size() for t in tree_flatten(tree)[0]
               if isinstance(t, torch.Tensor) and t.layout == torch.strided)


class OpCounter(TorchDispatchMode):
    """Counts every aten operator run inside it into ``parts[part_of(parents)]`` (or ``parts["all"]``)."""

    def __init__(self, part_of: Callable[[set[str]], str] | None = None):
        super().__init__()
        from torch.utils.flop_counter import flop_registry

        self._flops = flop_registry
        self.part_of = part_of
        self.tracker: Any = None
        self.parts: dict[str, OpProfile] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.namespace == "c10d":
            return out
        packet = func._overloadpacket
        flops = self._flops[packet](*args, **kwargs, out_val=out) if packet in self._flops else 0
        nbytes = 0 if _is_view(func) else _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
        part = self.part_of(set(self.tracker.parents)) if self.part_of and self.tracker else "all"
        self.parts[part] = self.parts.get(part, OpProfile()) + OpProfile(flops, nbytes, 1)
        return out


@contextlib.contextmanager
def profile(part_of: Callable[[set[str]], str] | None = None) -> Iterator[OpCounter]:
    """``with profile() as c: fn()`` then ``c.parts`` (``{"all": OpProfile}`` without ``part_of``).

    ``part_of(parents)`` names the part of an operator from the fully qualified names of the
    modules whose forward encloses it (``torch.utils.module_tracker``; reliable in forward only).
    """
    counter = OpCounter(part_of)
    if part_of is not None:
        from torch.utils.module_tracker import ModuleTracker

        counter.tracker = ModuleTracker()
        with counter.tracker, counter:
            yield counter
    else:
        with counter:
            yield counter


def roofline_seconds(p: OpProfile, flop_rate: float, mem_bw: float, op_time: float) -> float:
    """``flops / flop_rate + bytes / mem_bw + ops * op_time`` (s)."""
    return p.flops / flop_rate + p.bytes / mem_bw + p.ops * op_time


class _OpTimer(TorchDispatchMode):
    """CPU seconds of every aten operator, by part (``part_of(module parents)``)."""

    def __init__(self, part_of: Callable[[set[str]], str], tracker: Any):
        super().__init__()
        self.part_of, self.tracker = part_of, tracker
        self.seconds: dict[str, float] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        t0 = time.thread_time()
        out = func(*args, **(kwargs or {}))
        part = self.part_of(set(self.tracker.parents))
        self.seconds[part] = self.seconds.get(part, 0.0) + time.thread_time() - t0
        return out


@dataclass(frozen=True)
class PartTimes:
    """Measured CPU seconds of one training step of one process (see :func:`time_parts`)."""

    seconds: dict  # part -> fwd + bwd seconds, plus "optimizer"
    forward_backward_s: float
    forward_share: dict  # part -> share of the measured forward time
    reps: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median_cpu(fn: Callable[[], Any], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def time_parts(forward: Callable[[], torch.Tensor], optimizer_step: Callable[[], Any],
               part_of: Callable[[set[str]], str], reps: int = 5) -> PartTimes:
    """Calibrate the compute terms on this machine (module docstring); one thread, a second or two.

    ``forward()`` returns a scalar loss (its backward is timed with it), ``optimizer_step()``
    zeroes and applies the gradients, ``part_of(parents)`` names the part of a forward operator.
    """
    from torch.utils.module_tracker import ModuleTracker

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def fwd_bwd() -> None:
            forward().backward()

        fwd_bwd()
        optimizer_step()  # warm up
        total = _median_cpu(fwd_bwd, reps)
        opt = _median_cpu(optimizer_step, reps)
        tracker = ModuleTracker()
        timer = _OpTimer(part_of, tracker)
        with torch.no_grad(), tracker, timer:
            forward()
    finally:
        torch.set_num_threads(previous)
    fwd = sum(timer.seconds.values()) or 1.0
    share = {k: v / fwd for k, v in sorted(timer.seconds.items())}
    parts = {k: total * v for k, v in share.items()}
    parts["optimizer"] = opt
    return PartTimes(parts, total, share, reps)
