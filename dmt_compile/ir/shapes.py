"""Shape propagation (`dmt.shape`/`dmt.dtype` on every node) and tree comparison of outputs."""
from __future__ import annotations

import dataclasses

from typing import Any

import torch
import torch.fx as fx

from dmt_compile.ir.batch_dims import annotate_inputs
from dmt_compile.ir.evaluation import evaluation
from dmt_compile.ir.meta import DEVICE, DTYPE, SHAPE

__all__ = ["record_shapes", "tree_max_abs_diff", "tree_shapes_equal", "value_meta"]


def value_meta(value: Any) -> tuple[tuple[int, ...] | None, str | None]:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), str(value.dtype).replace("torch.", "")
    if type(value).__name__ == "KeyedTensor":
        return tuple(value.values().shape), "KeyedTensor"
    if type(value).__name__ == "KeyedJaggedTensor":
        return (len(value.values()),), "KeyedJaggedTensor"
    return None, None


class _ShapeRecorder(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        shape, dtype = value_meta(result)
        n.meta[SHAPE] = shape
        n.meta[DTYPE] = dtype
        if isinstance(result, torch.Tensor):
            n.meta[DEVICE] = result.device
        return result


def record_shapes(gm: fx.GraphModule, flat_inputs: list[Any]) -> Any:
    """Run `gm` on `flat_inputs` (eval mode, no grad) and annotate every node, and each placeholder with
    its batch dim (`ir.batch_dims`: field-major and time-major inputs); returns the output."""
    with evaluation(gm):
        result = _ShapeRecorder(gm).run(*flat_inputs)
    annotate_inputs(gm, output_batch_size(result))
    return result


def _is_dataclass_value(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def output_batch_size(value: Any) -> int | None:
    """Dim 0 of the first tensor of an output, breadth first through dicts, lists, tuples, dataclasses and
    KeyedTensors (its values); None when there is no tensor with a dim."""
    queue = [value]
    while queue:
        value = queue.pop(0)
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
        if type(value).__name__ == "KeyedTensor":
            queue.append(value.values())
        elif isinstance(value, dict):
            queue.extend(value.values())
        elif isinstance(value, (list, tuple)):
            queue.extend(value)
        elif _is_dataclass_value(value):
            queue.extend(getattr(value, f.name) for f in dataclasses.fields(value))
    return None


def tree_max_abs_diff(a: Any, b: Any) -> float | None:
    """Largest |a - b| over matching tensor leaves; None if the structures differ."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return None
        if a.numel() == 0:
            return 0.0
        return float((a.detach().double() - b.detach().double()).abs().max())
    if type(a).__name__ == "KeyedTensor" and type(b).__name__ == "KeyedTensor":
        if a.keys() != b.keys():
            return None
        return tree_max_abs_diff(a.values(), b.values())
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a.keys()) != list(b.keys()):
            return None
        parts = [tree_max_abs_diff(a[k], b[k]) for k in a]
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return None
        parts = [tree_max_abs_diff(x, y) for x, y in zip(a, b)]
    elif _is_dataclass_value(a) and type(a) is type(b):  # an output dataclass: its fields
        parts = [tree_max_abs_diff(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)]
    else:
        try:
            return 0.0 if bool(a == b) else None
        except Exception:  # noqa: BLE001 - values that do not compare (tensors inside an unknown object)
            return None
    if any(p is None for p in parts):
        return None
    return max(parts, default=0.0)


def tree_shapes_equal(a: Any, b: Any) -> bool:
    """Same structure and tensor shapes (values may differ)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(tree_shapes_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(tree_shapes_equal(x, y) for x, y in zip(a, b))
    if type(a).__name__ == "KeyedTensor" and type(b).__name__ == "KeyedTensor":
        return a.keys() == b.keys() and a.values().shape == b.values().shape
    if _is_dataclass_value(a) and type(a) is type(b):
        return all(tree_shapes_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return type(a) is type(b)
