"""Element-wise maps and column gathers through constants, for `ir.id_sources`.

A vocabulary remap or hash buffer read at the ids (`remap[x]`, `torch.take(remap, x)`), and
numeric bucketing by constant boundaries (`torch.bucketize(x, bounds)`), give each element a value
that depends on that element of `x` alone: column i of the result is column i of `x`. A gather of
constant column indices (`x.index_select(1, cols)` with `cols` a buffer) takes those columns of `x`.
Before these, both read as the whole input (one feature group, one tower).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from dmt_compile.ir.column_layout import op_name
from dmt_compile.ir.constants import Constants
from dmt_compile.ir.meta import SHAPE

__all__ = ["constant_column_gather", "constant_map", "constant_tensor"]


def constant_tensor(node: Any) -> torch.Tensor | None:
    gm = node.graph.owning_module if isinstance(node, fx.Node) else None
    value = Constants(gm).value(node) if gm is not None else None
    return value if isinstance(value, torch.Tensor) else None


def constant_map(node: fx.Node) -> fx.Node | None:
    """`x` when `node` maps each element of `x` through a constant: a 1-D table read at `x` (`remap[x]`,
    `torch.take(remap, x)`, `remap.index_select(0, x)`: a vocabulary remap or hash buffer) or a bucketing
    by constant boundaries (`torch.bucketize(x, bounds)`, `torch.searchsorted(bounds, x)`); each column of
    the result depends on that column of `x` alone. None otherwise."""
    name = op_name(node)
    args = list(node.args)
    if node.op not in ("call_function", "call_method") or node.kwargs and name != "bucketize":
        return None
    table = x = None
    if name in ("getitem", "__getitem__", "take") and len(args) == 2:
        table, x = args
    elif name == "index_select" and len(args) == 3 and args[1] == 0:
        table, x = args[0], args[2]
    elif name == "bucketize" and len(args) >= 2 and set(node.kwargs) <= {"out_int32", "right"}:
        x, table = args[0], args[1]
    elif name == "searchsorted" and len(args) == 2:
        table, x = args
    if not isinstance(x, fx.Node) or not isinstance(table, fx.Node) or constant_tensor(x) is not None:
        return None
    constant = constant_tensor(table)
    return x if constant is not None and constant.dim() == 1 else None


def constant_column_gather(node: fx.Node) -> tuple[fx.Node, list[int]] | None:
    """(x, the columns it takes) when `node` is `x.index_select(1, cols)` / `torch.index_select(x, 1, cols)`
    of a 2-D `x` with constant `cols` (a buffer of column indices), else None."""
    name = op_name(node)
    if node.op not in ("call_function", "call_method") or name != "index_select" or len(node.args) != 3 \
            or node.kwargs or not isinstance(node.args[0], fx.Node):
        return None
    x, dim, index = node.args
    shape = x.meta.get(SHAPE)
    cols = constant_tensor(index) if isinstance(index, fx.Node) else None
    if shape is None or len(shape) != 2 or dim not in (1, -1) or cols is None or cols.dim() != 1:
        return None
    return x, [int(c) % shape[1] for c in cols.tolist()]
