"""Baseline partitioners for the quality harness: `random` (balanced) and `contiguous` (feature order)."""
from __future__ import annotations

import random
from typing import Sequence

from dmt_compile.partition.interface import PartitionRequest, PartitionResult
from dmt_compile.partition.learned import group_affinity, plan_metrics, random_balanced

__all__ = ["random_partitioner", "contiguous_partitioner"]


def random_partitioner(req: PartitionRequest) -> PartitionResult:
    """Baseline: random balanced towers (seeded shuffle, each group to the least-loaded tower)."""
    assignment = random_balanced(req, random.Random(req.seed))
    measured = group_affinity(req)
    return PartitionResult(assignment, (f"random balanced towers (seed {req.seed})",),
                           plan_metrics(req, assignment, None if measured is None else measured[0]))


def contiguous_partitioner(req: PartitionRequest) -> PartitionResult:
    """Baseline: free groups in feature order, cut into consecutive chunks of about equal width."""
    assignment = dict(req.fixed)
    free = [g for g in req.groups if g.index not in assignment]
    total = sum(g.width for g in free)
    used = set(assignment.values())
    empty = [t for t in range(req.num_towers) if t not in used]
    # towers without pins take chunks in order; pinned towers take a chunk only when nothing is empty
    order: Sequence[int] = empty or list(range(req.num_towers))
    k, acc = 0, 0.0
    for pos, g in enumerate(free):
        remaining = len(free) - pos
        target = total * (k + 1) / len(order)
        if k < len(order) - 1 and (acc >= target - 1e-9 or remaining <= len(order) - 1 - k) and acc > 0:
            k += 1
        assignment[g.index] = order[k]
        acc += g.width
    measured = group_affinity(req)
    return PartitionResult(assignment, ("contiguous feature order",),
                           plan_metrics(req, assignment, None if measured is None else measured[0]))
