"""Tower boundary operators: explicit graph nodes where the distributed runtime moves data.

In one process both are the identity. The runtime lowers them per rank (docs/DESIGN.md):
`ids_exchange` sends the tower's id tensors peer-first to the tower's host; `outputs_exchange`
sends the Tower Module's batch-major outputs back to the ranks that own the samples.
"""
from __future__ import annotations

from typing import Any

import torch.fx as fx

__all__ = ["ids_exchange", "outputs_exchange", "BOUNDARY_OPS"]


@fx.wrap
def ids_exchange(tower: int, *ids: Any) -> tuple:
    """Ids (and offsets / per-sample weights / KJTs) of tower `tower`'s lookups, moved to its host."""
    return tuple(ids)


@fx.wrap
def outputs_exchange(tower: int, *payload: Any) -> tuple:
    """Tower `tower`'s outputs (batch-major), moved back to the ranks that own the samples."""
    return tuple(payload)


BOUNDARY_OPS = {ids_exchange: "ids_exchange", outputs_exchange: "outputs_exchange"}
