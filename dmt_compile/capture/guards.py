"""Guards: every value-dependent answer the specialising tracer baked into the graph is checked again at call time.

The `specialize` capture path answers `bool()`, `int()`, `len()` and `iter()` of a traced value
from the example inputs. An answer that depends only on static facts (a tensor's rank, dtype or a
non-batch dimension) is safe to bake. Any other answer — one computed from tensor *values* (`if
x.sum() > 0`, `int(ids.max())`) or from the batch size — becomes a `dmt_guard` node that recomputes
it on every call and raises `SpecializationError` naming the line of model code when a later input
would take the other branch, so a specialised graph never returns a silently wrong result.

`value_dependence(node)` classifies a traced node: `"static"`, `"batch"` (depends on the batch
size only) or `"data"` (depends on tensor values: inputs, parameters, buffers).
"""
from __future__ import annotations

import operator
from typing import Any

import torch.fx as fx
from torch.fx.node import has_side_effect

from dmt_compile.errors import SpecializationError
from dmt_compile.ir.meta import BATCH_DIM

__all__ = ["check_static_dims", "dmt_guard", "value_dependence"]

_STATIC_META = {"dim", "ndimension", "dtype", "device", "ndim", "is_cuda", "layout", "is_sparse"}


def _answer(kind: str, value: Any) -> Any:
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    return len(value)


@has_side_effect
def dmt_guard(value: Any, kind: str, expected: Any, where: str, depends: str = "data") -> None:
    """Raise `SpecializationError` unless `kind(value) == expected` (the answer baked into the graph).

    `depends` is what the answer can change with (`value_dependence`): "batch" names the batch size in
    the error, so a branch such as `if x.shape[0] != self.batch_size:` gets the fix that applies to it."""
    actual = _answer(kind, value)
    if actual == expected:
        return
    if depends == "batch":
        raise SpecializationError(
            f"this call's batch size takes a different branch than the example inputs at {where}: "
            f"{kind}(...) is {actual!r} now but was {expected!r} when the model was captured (the branch "
            "depends on the batch size), and the graph holds only that branch",
            "transform the model with example inputs of the batch size it will be called with, or make the "
            "branch independent of the batch size",
        )
    raise SpecializationError(
        f"this call takes a different branch than the example inputs at {where}: {kind}(...) is {actual!r} "
        f"now but was {expected!r} when the model was captured, and the graph holds only that branch",
        "transform the model again with example inputs that take this branch, or make the branch "
        "independent of tensor values (e.g. torch.where) so it can be traced",
    )


@has_side_effect
def check_static_dims(value: Any, expected: tuple, where: str) -> None:
    """Raise `InputError` unless `value`'s sizes match `expected` (None: any size, the dynamic batch dim).

    A graph from torch.export holds every non-batch size of the example as a constant (a view to
    `[B, 6, D]`, an `arange(6)`); a call with another size would fail somewhere inside it, untyped."""
    shape = tuple(value.shape)
    if len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape)):
        return
    from dmt_compile.errors import InputError

    show = lambda dims: "(" + ", ".join("B" if d is None else str(d) for d in dims) + ")"  # noqa: E731
    raise InputError(
        f"input {where} has shape {tuple(shape)}, but the model was captured by torch.export with every dim but "
        f"the batch fixed to the example's: {show(expected)}",
        "call it with the example's sizes, or transform with example inputs of these sizes (a model that fx "
        "traces keeps them free: see the capture report for why the fx paths failed)",
    )


def _static_index(node: fx.Node) -> Any:
    return node.args[1] if len(node.args) > 1 else None


def value_dependence(node: fx.Node, cache: dict[fx.Node, str] | None = None) -> str:
    """"static", "batch" or "data": what the value of `node` can change with between calls."""
    cache = {} if cache is None else cache
    if node in cache:
        return cache[node]
    kind = _dependence(node, cache)
    cache[node] = kind
    return kind


def _batch_dim(tensor: Any) -> int | None:
    """The dim of an input that carries samples (`dmt.batch_dim`: 1 for a field-major `[F, B]` or time-major
    `[L, B]` input, set by `fx_trace` from the example); 0 for any other value (the conventional layout)."""
    if isinstance(tensor, fx.Node) and tensor.op == "placeholder":
        return tensor.meta.get(BATCH_DIM, 0)
    return 0


def _join(kinds: list[str]) -> str:
    return "data" if "data" in kinds else "batch" if "batch" in kinds else "static"


def _dependence(node: fx.Node, cache: dict[fx.Node, str]) -> str:
    if node.op == "placeholder":
        return "data"
    if node.op == "get_attr":
        return "static" if str(node.target).startswith("_tensor_constant") else "data"
    inputs = [value_dependence(a, cache) for a in node.all_input_nodes]
    base = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
    if node.op == "call_method" and node.target in _STATIC_META:
        return "static"
    if node.op == "call_method" and node.target == "size":
        index = _static_index(node)
        if index is None:
            return "shape"
        return "batch" if index == _batch_dim(base) else "static"
    if node.op == "call_function" and node.target is getattr and node.args[1] in _STATIC_META:
        return "static"
    if node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
        return "shape"
    if node.op == "call_function" and node.target is operator.getitem and base is not None \
            and cache.get(base) == "shape":
        index = node.args[1]
        return "batch" if isinstance(index, slice) or index == _batch_dim(base.args[0]) else "static"
    if node.op == "call_method" and node.target == "numel":
        return "batch"
    if all(k in ("static", "batch", "shape") for k in inputs) and _is_scalar_math(node):
        return _join(["batch" if k == "shape" else k for k in inputs])
    return "data" if inputs or node.op != "call_function" else "static"


def _is_scalar_math(node: fx.Node) -> bool:
    """Python arithmetic / comparisons on metadata values (sizes, ranks), and numpy ufuncs of them
    (`np.ceil(x.shape[0] / vbs)`, recorded as `numpy_ufunc` nodes by capture/numpy_proxies.py)."""
    module = getattr(node.target, "__module__", None)
    return node.op == "call_function" and (module in ("_operator", "operator") or (
        getattr(node.target, "__name__", "") == "numpy_ufunc" and module == "dmt_compile.capture.numpy_proxies"))
