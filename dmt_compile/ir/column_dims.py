"""Which columns of an input a pick along the column dim of a value takes, whatever its spelling.

`ir.column_layout` says where a `[B, C]` id matrix's batch and columns sit in a value derived from it
by layout ops (transposes, inserted or removed singleton dims; element-wise ops with constants above
or below them). A *pick along the column dim* takes columns of the matrix: an index (`x.t()[i]`,
iterating `x.T`, `x.unsqueeze(-1)[:, i]`, `x[:, :, None][:, i, 0]`, `x.view(B, 1, C)[:, 0, i]`, with
the batch dim whole and singleton dims at 0 or whole), `select(d, i)`, `narrow(d, start, n)`, and
piece i of `unbind(d)`, `split(size, d)` (an int size or a list of sizes) and `chunk(n, d)`.
`ir.id_sources` asks :func:`picked_columns` after its own rules, so each of these spellings gives one
atom per column instead of the whole input.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Callable

import torch
import torch.fx as fx

from dmt_compile.ir.column_layout import Layout, column_layout, norm_dim, op_name

__all__ = ["picked_columns"]


def _arg(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _piece(split: fx.Node, i: int, width: int, dim: int, rank: int) -> list[int] | None:
    """Columns of piece i of `unbind` / `split` / `chunk` of a value whose columns are on `dim`."""
    name = op_name(split)
    if name == "unbind":
        return [i] if norm_dim(_arg(split, 1, "dim", 0), rank) == dim else None
    if name == "split":
        size = _arg(split, 1, "split_size_or_sections", _arg(split, 1, "split_size"))
        if norm_dim(_arg(split, 2, "dim", 0), rank) != dim:
            return None
        sizes = [size] * math.ceil(width / size) if _is_int(size) and size > 0 else size
    elif name == "chunk":
        n = _arg(split, 1, "chunks")
        if norm_dim(_arg(split, 2, "dim", 0), rank) != dim or not _is_int(n) or n < 1:
            return None
        step = math.ceil(width / n)
        sizes = [step] * math.ceil(width / step)
    else:
        return None
    if not isinstance(sizes, (list, tuple)) or not all(_is_int(s) for s in sizes) or i >= len(sizes):
        return None
    start = sum(sizes[:i])
    return list(range(start, min(width, start + sizes[i])))


def _indexed_columns(layout: Layout, index: Any) -> list[int] | None:
    """Columns taken by `value[index]`: the batch dim whole, singleton dims at 0 / -1 or whole, and an int or
    a list of ints on the column dim (which must be indexed, else it is every column)."""
    parts = list(index) if isinstance(index, tuple) else [index]
    if any(p is None or p is Ellipsis for p in parts) or len(parts) > layout.rank:
        return None
    width, columns = layout.width, None
    for label, part in zip(layout.dims, parts):
        whole = isinstance(part, slice) and part == slice(None)
        if label == "b" and not whole:
            return None
        if label == "1" and not (whole or part in (0, -1)):
            return None
        if label == "c":
            if _is_int(part) and -width <= part < width:
                columns = [part % width]
            elif isinstance(part, (list, tuple)) and part and all(_is_int(p) and -width <= p < width for p in part):
                columns = [p % width for p in part]
            else:  # a slice of columns is left to id_sources' own rules (`x[:, a:b]`; `x[:, -L:]` of a
                return None  # sequence stays one feature)
    return columns or None


def picked_columns(node: fx.Node, below: Callable[[fx.Node], fx.Node]) -> tuple[fx.Node, list[int]] | None:
    """(2-D value, columns of it) when `node` picks columns of a 2-D value along its column dim, else None."""
    if node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], fx.Node):
        base, index = node.args
        if _is_int(index) and base.op in ("call_method", "call_function") and op_name(base) in \
                ("unbind", "split", "chunk") and base.args:
            layout = column_layout(base.args[0], below)
            columns = _piece(base, index, layout.width, layout.column_dim, layout.rank) if layout else None
            return (layout.source, columns) if columns else None
        layout = column_layout(base, below)
        columns = _indexed_columns(layout, index) if layout is not None else None
        return (layout.source, columns) if columns else None
    name = op_name(node) if node.op in ("call_method", "call_function") else ""
    if name not in ("select", "narrow") or not node.args:
        return None
    if node.op == "call_function" and node.target not in (torch.select, torch.narrow):
        return None
    layout = column_layout(node.args[0], below)
    if layout is None or norm_dim(_arg(node, 1, "dim"), layout.rank) != layout.column_dim:
        return None
    width = layout.width
    start = _arg(node, 2, "index" if name == "select" else "start")
    length = 1 if name == "select" else _arg(node, 3, "length")
    if not _is_int(start) or not _is_int(length) or not -width <= start < width or length < 1:
        return None
    start %= width
    return layout.source, list(range(start, min(width, start + length)))
