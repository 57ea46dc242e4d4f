"""Partitioners by name: `balanced` (default), `learned` (the Tower Partitioner), `random`, `contiguous`."""
from __future__ import annotations

from dmt_compile.errors import PlanError
from dmt_compile.partition.balanced import balanced_partitioner
from dmt_compile.partition.baselines import contiguous_partitioner, random_partitioner
from dmt_compile.partition.interface import Partitioner
from dmt_compile.partition.learned import learned_partitioner

__all__ = ["PARTITIONERS", "get_partitioner", "needs_calibration"]

PARTITIONERS: dict[str, Partitioner] = {
    "balanced": balanced_partitioner,
    "learned": learned_partitioner,
    "random": random_partitioner,
    "contiguous": contiguous_partitioner,
}


def get_partitioner(name: str) -> Partitioner:
    try:
        return PARTITIONERS[name]
    except KeyError:
        raise PlanError(f"unknown partitioner {name!r}", "choose one of: " + ", ".join(sorted(PARTITIONERS))) from None


def needs_calibration(partitioner: Partitioner) -> bool:
    """True for partitioners that measure the model's embeddings (they get the example batch at least)."""
    return bool(getattr(partitioner, "needs_calibration", False))
