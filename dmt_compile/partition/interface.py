"""The partitioner interface: `PartitionRequest -> PartitionResult`.

A partitioner assigns every feature group to a tower. Groups (shared tables, shared id sources)
are never split; `fixed` holds the user's pins, which must be honoured.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dmt_compile.ir.detection import FeatureGroup, Lookup

__all__ = ["PartitionRequest", "PartitionResult", "Partitioner"]


@dataclass(frozen=True)
class PartitionRequest:
    """What a partitioner sees: feature groups (never split), tower count, pinned groups, data."""

    groups: tuple[FeatureGroup, ...]
    num_towers: int
    fixed: Mapping[int, int]  # group index -> tower, from user pins (must be honoured)
    topology: Any
    seed: int = 0
    # lookup index -> that lookup's output on each calibration batch (None without calibration)
    lookup_outputs: Mapping[int, list] | None = None
    lookups: tuple[Lookup, ...] = ()


@dataclass(frozen=True)
class PartitionResult:
    assignment: Mapping[int, int]  # group index -> tower, for every group
    notes: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)


Partitioner = Callable[[PartitionRequest], PartitionResult]
