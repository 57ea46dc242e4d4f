"""Which dim of a value holds an input's columns, and which columns a pick along that dim takes.

A `[B, C]` id matrix keeps its columns on dim 1; its transpose (`x.t()`, `x.T`, `x.transpose(0, 1)`,
`x.permute(1, 0)`, and element-wise ops with constants above or below it) keeps them on dim 0. A
*pick along the column dim* takes columns of the input whatever its spelling: an int index of a
transposed matrix (`x.t()[i]`, iterating `x.T`), `select(d, i)`, `narrow(d, start, n)`, and piece i
of `unbind(d)`, `split(size, d)` (an int size or a list of sizes) and `chunk(n, d)`. `ir.id_sources`
asks :func:`picked_columns` after its own rules, so each of these spellings gives one atom per column
instead of the whole input.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch
import torch.fx as fx

from dmt_compile.ir.meta import SHAPE

__all__ = ["column_dim", "picked_columns"]

_TRANSPOSES = ("t", "transpose", "permute")


def _dim(value: Any, rank: int = 2) -> int | None:
    return value % rank if isinstance(value, int) and not isinstance(value, bool) and -rank <= value < rank else None


def _name(node: fx.Node) -> str:
    target = node.target
    return target if isinstance(target, str) else getattr(target, "__name__", "")


def _is_transpose(node: fx.Node) -> bool:
    """A transpose of a 2-D value (its two dims swapped)."""
    if node.op == "call_function" and node.target is getattr:
        return len(node.args) == 2 and node.args[1] in ("T", "mT")
    if node.op == "call_function" and node.target in (torch.t, torch.transpose, torch.permute):
        name = node.target.__name__
    elif node.op == "call_method" and node.target in _TRANSPOSES:
        name = node.target
    else:
        return False
    rest = list(node.args[1:])
    if name == "t":
        return not rest and not node.kwargs
    if name == "transpose":
        return len(rest) == 2 and sorted(_dim(d) for d in rest if _dim(d) is not None) == [0, 1]
    dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
    return [_dim(d) for d in dims] == [1, 0]


def column_dim(node: Any, below: Callable[[fx.Node], fx.Node]) -> tuple[fx.Node, int] | None:
    """(the 2-D value under `node`'s transposes, the dim of `node` holding its columns), looking through
    element-wise ops with constants (`below`, id_sources' walk); None when `node` is not a 2-D value or
    a transpose of one. The 2-D value is an input or a column pick of one (id_sources maps it back)."""
    if not isinstance(node, fx.Node):
        return None
    dim = 1
    for _ in range(4):
        node = below(node)
        if not _is_transpose(node):
            shape = node.meta.get(SHAPE)
            return (node, dim) if shape is not None and len(shape) == 2 else None
        if not isinstance(node.args[0], fx.Node):
            return None
        dim, node = 1 - dim, node.args[0]
    return None


def _arg(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _piece(split: fx.Node, i: int, width: int, dim: int) -> list[int] | None:
    """Columns of piece i of `unbind` / `split` / `chunk` of a value whose columns are on `dim`."""
    name = _name(split)
    if name == "unbind":
        return [i] if _dim(_arg(split, 1, "dim", 0)) == dim else None
    if name == "split":
        size = _arg(split, 1, "split_size_or_sections", _arg(split, 1, "split_size"))
        if _dim(_arg(split, 2, "dim", 0)) != dim:
            return None
        sizes = [size] * math.ceil(width / size) if isinstance(size, int) and size > 0 else size
    elif name == "chunk":
        n = _arg(split, 1, "chunks")
        if _dim(_arg(split, 2, "dim", 0)) != dim or not isinstance(n, int) or n < 1:
            return None
        step = math.ceil(width / n)
        sizes = [step] * math.ceil(width / step)
    else:
        return None
    if not isinstance(sizes, (list, tuple)) or not all(isinstance(s, int) for s in sizes) or i >= len(sizes):
        return None
    start = sum(sizes[:i])
    return list(range(start, min(width, start + sizes[i])))


def picked_columns(node: fx.Node, below: Callable[[fx.Node], fx.Node]) -> tuple[fx.Node, list[int]] | None:
    """(2-D value, columns of it) when `node` picks columns of a 2-D value along its column dim, else None."""
    if node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], fx.Node):
        base, index = node.args
        if not isinstance(index, int) or isinstance(index, bool):
            return None
        if base.op in ("call_method", "call_function") and _name(base) in ("unbind", "split", "chunk") and base.args:
            found = column_dim(base.args[0], below)
            if found is None:
                return None
            source, dim = found
            width = source.meta[SHAPE][1]
            columns = _piece(base, index, width, dim)
            return (source, columns) if columns else None
        found = column_dim(base, below)  # x.t()[i]: an int index of dim 0 when it holds the columns
        if found is None or found[1] != 0:
            return None
        width = found[0].meta[SHAPE][1]
        return (found[0], [index % width]) if -width <= index < width else None
    name = _name(node) if node.op in ("call_method", "call_function") else ""
    if name not in ("select", "narrow") or not node.args:
        return None
    if node.op == "call_function" and node.target not in (torch.select, torch.narrow):
        return None
    found = column_dim(node.args[0], below)
    if found is None or _dim(_arg(node, 1, "dim")) != found[1]:
        return None
    source, width = found[0], found[0].meta[SHAPE][1]
    start = _arg(node, 2, "index" if name == "select" else "start")
    length = 1 if name == "select" else _arg(node, 3, "length")
    if not isinstance(start, int) or not isinstance(length, int) or not -width <= start < width or length < 1:
        return None
    start %= width
    return source, list(range(start, min(width, start + length)))
