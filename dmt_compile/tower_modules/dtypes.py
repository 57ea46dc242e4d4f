"""The dtype and device a tower's Tower Module is built in: those of the tower's embedding tables.

A Tower Module built in the default dtype (float32) beside float16, bfloat16 or float64 tables failed
with "mat1 and mat2 must have the same dtype" in the first forward; :func:`tower_tensor` finds one
floating-point table tensor the tower's lookups read, whose dtype and device the module is moved to.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import fx

__all__ = ["tower_tensor"]


def _floating(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value
    if isinstance(value, torch.nn.Module):
        for t in list(value.parameters(recurse=True)) + list(value.buffers(recurse=True)):
            if t.is_floating_point():
                return t
    return None


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def tower_tensor(gm: fx.GraphModule, tower: Any) -> torch.Tensor | None:
    """A floating-point table tensor read by the tower's lookups (None when there is none to follow)."""
    for node in tower.lookups:
        if node.op == "call_module":
            found = _floating(_fetch(gm, str(node.target)))
            if found is not None:
                return found
        for arg in node.all_input_nodes:
            if arg.op == "get_attr":
                found = _floating(_fetch(gm, str(arg.target)))
                if found is not None:
                    return found
    return None
