"""Constant folding as an analysis: which graph values depend on no sample, and what they are.

A value is *constant* when it is computed only from parameters, buffers, module attributes,
Python constants and the *metadata* of non-constant tensors: their dtype, device, number of
dimensions and every size except the batch dimension (dim 0, which changes from batch to batch).
So `x.new_tensor(self.offsets)`, `torch.as_tensor(np_array, device=x.device)`,
`torch.arange(x.shape[1], device=x.device) * rows`, `torch.tensor(list).cumsum(0)` and
`x.new_zeros(F)` are constant; `x + 1`, `x.shape[0]`, `torch.rand(F)` and in-place ops are not.

`Constants(gm).value(node)` evaluates such a value from the module's attributes and the nodes'
recorded metadata (`dmt.shape`, `dmt.dtype`, `dmt.device`), never calling an op with an fx Node
among its arguments: a non-constant tensor is replaced, where only its metadata is read, by an
empty stand-in of the same dtype and device. Passes read offsets and scales through this analysis
(split-tables) and ask `is_constant` when deciding whether an element-wise op keeps id columns
apart (`ir.id_sources`). It does not mutate the graph.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from dmt_compile.ir.graph import get_attr_value
from dmt_compile.ir.meta import DEVICE, DTYPE, SHAPE

__all__ = ["NOT_CONSTANT", "Constants", "is_constant"]


class _NotConstant:
    def __repr__(self) -> str:
        return "NOT_CONSTANT"


#: The value of a node that depends on the samples (or could not be evaluated safely).
NOT_CONSTANT = _NotConstant()

#: Ops whose result is random or uninitialised: never folded, whatever their arguments.
_RANDOM = frozenset({
    "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like", "bernoulli", "normal",
    "multinomial", "dropout", "empty", "empty_like", "new_empty", "empty_strided", "poisson", "uniform",
})
#: Methods that read only the metadata (dtype, device) of their receiver.
_METADATA_RECEIVER = frozenset({"new_tensor", "new_zeros", "new_ones", "new_full"})
#: Methods that read only the metadata of their tensor arguments (the receiver is the value).
_METADATA_ARGUMENT = frozenset({"to", "type_as"})


class _Shape(tuple):
    """The shape of a non-constant tensor: dim 0 (the batch) is NOT_CONSTANT, the rest are ints."""


def _target_name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", "")


def _has_unknown(value: Any) -> bool:
    if value is NOT_CONSTANT:
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_unknown(v) for v in value)
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, slice):
        return _has_unknown((value.start, value.stop, value.step))
    return False


class Constants:
    """Lazily folds the constant values of one graph module's nodes (cached per node)."""

    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self._cache: dict[fx.Node, Any] = {}

    def is_constant(self, arg: Any) -> bool:
        return not _has_unknown(self.value(arg))

    def value(self, arg: Any) -> Any:
        """The constant value of `arg` (a node, or a literal possibly holding nodes), else NOT_CONSTANT."""
        if isinstance(arg, fx.Node):
            if arg not in self._cache:
                self._cache[arg] = self._evaluate(arg)
            return self._cache[arg]
        if isinstance(arg, (list, tuple)) and not isinstance(arg, _Shape):
            return type(arg)(self.value(a) for a in arg) if type(arg) in (list, tuple) else arg
        if isinstance(arg, dict):
            return {k: self.value(v) for k, v in arg.items()}
        if isinstance(arg, slice):
            return slice(self.value(arg.start), self.value(arg.stop), self.value(arg.step))
        return arg

    def _evaluate(self, node: fx.Node) -> Any:
        if node.op == "get_attr":
            return get_attr_value(self.gm, node.target)
        if node.op not in ("call_function", "call_method"):
            return NOT_CONSTANT
        name = _target_name(node)
        if name in _RANDOM or (name.endswith("_") and not name.startswith("__")):
            return NOT_CONSTANT
        metadata = self._metadata(node, name)
        if metadata is not None:
            return metadata
        args, kwargs = self.value(list(node.args)), self.value(dict(node.kwargs))
        if name == "getitem" and args and isinstance(args[0], _Shape) and not _has_unknown(args[1:]):
            return _index_shape(args[0], args[1])
        if node.op == "call_method" and name in _METADATA_RECEIVER and args and args[0] is NOT_CONSTANT:
            args[0] = self._stand_in(node.args[0])
        if node.op == "call_method" and name in _METADATA_ARGUMENT:
            args = [args[0]] + [self._stand_in(a) if v is NOT_CONSTANT else v for a, v in zip(node.args[1:], args[1:])]
        if _has_unknown(args) or _has_unknown(kwargs):
            return NOT_CONSTANT
        return _call(node, args, kwargs)

    def _metadata(self, node: fx.Node, name: str) -> Any:
        """dtype / device / ndim / non-batch sizes of a non-constant tensor, or None if not such a read."""
        source = node.args[0] if node.args else None
        if not isinstance(source, fx.Node) or self.is_constant(source):
            return None
        shape = source.meta.get(SHAPE)
        if node.op == "call_function" and name == "getattr":
            attribute = node.args[1]
            if attribute == "shape" and shape is not None:
                return _Shape((NOT_CONSTANT, *shape[1:]))
            if attribute == "ndim" and shape is not None:
                return len(shape)
            if attribute == "dtype" and source.meta.get(DTYPE):
                return getattr(torch, source.meta[DTYPE], NOT_CONSTANT)
            if attribute == "device" and DEVICE in source.meta:
                return source.meta[DEVICE]
            return NOT_CONSTANT
        if node.op == "call_method" and name in ("dim", "ndimension") and shape is not None:
            return len(shape)
        if node.op == "call_method" and name == "size" and shape is not None:
            dim = self.value(node.args[1]) if len(node.args) > 1 else node.kwargs.get("dim")
            if dim is None:
                return _Shape((NOT_CONSTANT, *shape[1:]))
            return NOT_CONSTANT if not isinstance(dim, int) or dim % len(shape) == 0 else shape[dim]
        if node.op == "call_function" and name == "len" and shape:
            return len(shape)
        return None

    @staticmethod
    def _stand_in(arg: Any) -> Any:
        """An empty tensor with `arg`'s dtype and device (only its metadata is read), else NOT_CONSTANT."""
        if not isinstance(arg, fx.Node) or not arg.meta.get(DTYPE) or DEVICE not in arg.meta:
            return NOT_CONSTANT
        dtype = getattr(torch, arg.meta[DTYPE], None)
        if not isinstance(dtype, torch.dtype):
            return NOT_CONSTANT
        return torch.empty(0, dtype=dtype, device=arg.meta[DEVICE])


def _index_shape(shape: _Shape, index: Any) -> Any:
    try:
        picked = tuple.__getitem__(shape, index)
    except (TypeError, IndexError):
        return NOT_CONSTANT
    return _Shape(picked) if isinstance(picked, tuple) and NOT_CONSTANT in picked else picked


def _call(node: fx.Node, args: list, kwargs: dict) -> Any:
    """Run the node's op on constant arguments (no grad); NOT_CONSTANT if it fails."""
    try:
        with torch.no_grad():
            if node.op == "call_function":
                return node.target(*args, **kwargs)
            return getattr(args[0], node.target)(*args[1:], **kwargs)
    except Exception:  # noqa: BLE001 - an op that cannot run on these values is simply not folded
        return NOT_CONSTANT


def is_constant(node: Any) -> bool:
    """Whether `node` (in a graph owned by a GraphModule) is constant; see `Constants`."""
    if not isinstance(node, fx.Node):
        return True
    gm = node.graph.owning_module
    if gm is None:
        return node.op == "get_attr"
    return Constants(gm).is_constant(node)
