"""Statistics of the benchmark: medians with bootstrap 95 % intervals, paired per-round ratios, the load gate.

Every strategy runs one step per round, rounds interleaved (:mod:`.worker`), so round ``k`` of two
strategies saw the same state of the box. A speedup is therefore computed **per round**
(``base[k] / other[k]``) and summarised as the median of those ratios with a percentile bootstrap
95 % confidence interval (resampling rounds with replacement, fixed seed, so a report is
reproducible); step times get the same treatment. The methodology asks for at least
:data:`MIN_ROUNDS` paired rounds; fewer are reported but flagged (``enough_rounds``: false).

The load gate refuses to start a timed run while the 1-minute load average is above half the
cores (other jobs would set the step time); ``force`` runs anyway and the report says so.
"""
from __future__ import annotations

import os
import random
import statistics
from typing import Callable, Sequence

from dmt_compile.errors import DmtError

__all__ = ["MIN_ROUNDS", "bootstrap_ci", "median_ci", "paired_ratio", "LoadGateError", "check_load", "loadavg"]

MIN_ROUNDS = 30
BOOTSTRAP_REPS = 2000


class LoadGateError(DmtError):
    """The box is too busy for a timed run."""


def loadavg() -> list[float]:
    """The 1-, 5- and 15-minute load averages ([] where /proc/loadavg is missing)."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:  # pragma: no cover - not Linux
        return []


def check_load(force: bool, cores: int | None = None, load: Sequence[float] | None = None) -> dict:
    """{"load": [1, 5, 15 min], "cores", "limit", "forced"}; raises :class:`LoadGateError` when the
    1-minute load is above cores / 2 and not `force`."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = list(loadavg() if load is None else load)
    limit = cores / 2
    busy = bool(load) and load[0] > limit
    if busy and not force:
        raise LoadGateError(f"the 1-minute load average is {load[0]:.2f}, above half the {cores} cores ({limit:g}): "
                            "other jobs would set the step times",
                            "wait for an idle box, or pass --force (the report then marks the run as loaded)")
    return {"load": load, "cores": cores, "limit": limit, "forced": busy}


def bootstrap_ci(xs: Sequence[float], stat: Callable[[Sequence[float]], float] = statistics.median,
                 reps: int = BOOTSTRAP_REPS, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap interval of `stat` over `xs` ([nan, nan] without samples)."""
    xs = list(xs)
    if not xs:
        return [float("nan"), float("nan")]
    rng = random.Random(seed)
    n = len(xs)
    draws = sorted(stat([xs[rng.randrange(n)] for _ in range(n)]) for _ in range(reps))
    lo = draws[int((1 - level) / 2 * (reps - 1))]
    hi = draws[int((1 + level) / 2 * (reps - 1))]
    return [float(lo), float(hi)]


def median_ci(xs: Sequence[float]) -> dict:
    """{"median", "ci95": [lo, hi], "n"} of `xs`."""
    xs = list(xs)
    med = float(statistics.median(xs)) if xs else float("nan")
    return {"median": med, "ci95": bootstrap_ci(xs), "n": len(xs)}


def paired_ratio(base: Sequence[float], other: Sequence[float]) -> dict:
    """Per-round ratios ``base[k] / other[k]`` (a speedup of `other` over `base`): {"median", "ci95",
    "n", "enough_rounds"}; rounds beyond the shorter list are ignored."""
    ratios = [b / o for b, o in zip(base, other) if o > 0]
    out = median_ci(ratios)
    out["enough_rounds"] = len(ratios) >= MIN_ROUNDS
    return out
