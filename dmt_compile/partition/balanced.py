"""The default partitioner: longest-processing-time greedy by looked-up width per sample.

Width per sample is the term that drives lookup, exchange and Tower-Module cost; ties go by
table size, then group index, so the result is deterministic. Every tower gets a group first.
"""
from __future__ import annotations

from dmt_compile.partition.interface import PartitionRequest, PartitionResult

__all__ = ["balanced_partitioner"]


def balanced_partitioner(req: PartitionRequest) -> PartitionResult:
    """Longest-processing-time greedy by looked-up width per sample, ties by table size."""
    assignment = dict(req.fixed)
    width = [0] * req.num_towers
    elems = [0] * req.num_towers
    for gi, t in assignment.items():
        width[t] += req.groups[gi].width
        elems[t] += req.groups[gi].table_elements
    free = sorted((g for g in req.groups if g.index not in assignment),
                  key=lambda g: (-g.width, -g.table_elements, g.index))
    for g in free:
        used = set(assignment.values())
        t = min(range(req.num_towers), key=lambda i: (i in used, width[i], elems[i], i))
        assignment[g.index] = t
        width[t] += g.width
        elems[t] += g.table_elements
    return PartitionResult(assignment)
