"""Tables indexed by ids: a parameter matrix read at integer ids is an embedding lookup.

Model code need not use `nn.Embedding`: a table can be a plain `nn.Parameter` of shape `[rows, D]`
read as `W[ids]`, `torch.index_select(W, 0, ids)` / `W.index_select(0, ids)`, `torch.embedding(W, ids)`
(the op under `F.embedding`), or, in an exported
graph, `aten.index.Tensor(W, [ids])` / `aten.index_select(W, 0, ids)`. Each is `F.embedding(ids, W)`
for ids in `[0, rows)`, so capture rewrites it into that spelling, which detection, splitting and
lowering understand. What is rewritten, and nothing else:

* the indexed value is a `get_attr` of an `nn.Parameter` (a buffer is never a table: offsets and
  lookup-index buffers indexed by ids stay as they are), two-dimensional, floating point;
* the index is a single tensor of an integer dtype (int64 / int32: a bool mask selects rows, a
  tuple indexes several dims; neither is a lookup) and `index_select` selects along dim 0.

A one-hot product is the same read: `F.one_hot(ids, rows)` cast to a floating dtype (`.float()`,
`.to(...)`, `.type_as(W)`) times the table (`@`, `torch.matmul`, `torch.mm`, `.mm`, `.matmul`) is
`F.embedding(ids, W)` with `num_classes` equal to the table's rows (without it the width follows the
largest id of the batch, and the product only runs when that matches).

Negative ids are the one difference: `W[-1]` reads the last row where `F.embedding` raises. Capture
checks the rewritten graph against the model on the example inputs and keeps the graph as traced
when they differ (:func:`lift_indexed_tables` is undone by the caller re-tracing).
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from dmt_compile.ir.constants import Constants
from dmt_compile.ir.meta import DTYPE

__all__ = ["lift_indexed_tables"]

_INT_DTYPES = ("int64", "int32")
_aten = torch.ops.aten


def _is_table(gm: fx.GraphModule, node: Any) -> bool:
    if not isinstance(node, fx.Node) or node.op != "get_attr":
        return False
    try:
        value = gm.get_parameter(node.target)  # a buffer or a plain attribute is never a table
    except AttributeError:
        return False
    return value.dim() == 2 and value.is_floating_point()


def _is_ids(node: Any) -> bool:
    return isinstance(node, fx.Node) and node.meta.get(DTYPE) in _INT_DTYPES


def _dim0(dim: Any) -> bool:
    return isinstance(dim, int) and dim in (0, -2)


_MATMULS = (operator.matmul, torch.matmul, torch.mm)
_CASTS = ("float", "double", "half", "bfloat16", "to", "type_as", "type")


def _one_hot_ids(gm: fx.GraphModule, node: Any, table: fx.Node) -> fx.Node | None:
    """`ids` when `node` is `F.one_hot(ids, rows)` (a floating cast of it) with `rows` the table's rows."""
    while isinstance(node, fx.Node) and node.op == "call_method" and node.target in _CASTS and node.args:
        node = node.args[0]
    if not isinstance(node, fx.Node) or node.op != "call_function" or node.target is not F.one_hot:
        return None
    ids = node.args[0] if node.args else node.kwargs.get("tensor")
    classes = node.args[1] if len(node.args) > 1 else node.kwargs.get("num_classes", -1)
    if isinstance(classes, fx.Node):  # `F.one_hot(ids, W.shape[0])`: a size of a parameter is a constant
        classes = Constants(gm).value(classes)
    rows = gm.get_parameter(table.target).shape[0]
    return ids if isinstance(classes, int) and classes == rows and _is_ids(ids) else None


def _one_hot_product(gm: fx.GraphModule, node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    matmul = (node.op == "call_function" and node.target in _MATMULS) or (
        node.op == "call_method" and node.target in ("mm", "matmul"))
    if not matmul or len(node.args) != 2 or node.kwargs or not _is_table(gm, node.args[1]):
        return None
    ids = _one_hot_ids(gm, node.args[0], node.args[1])
    return (node.args[1], ids) if ids is not None else None


def indexed_table(gm: fx.GraphModule, node: fx.Node) -> tuple[fx.Node, fx.Node] | None:
    """(table, ids) when `node` reads a parameter table at integer ids, else None."""
    product = _one_hot_product(gm, node)
    if product is not None:
        return product
    if node.op == "call_function" and node.target is operator.getitem and len(node.args) == 2:
        table, ids = node.args
    elif node.op == "call_function" and node.target is _aten.index.Tensor and len(node.args) == 2:
        table, index = node.args
        if not (isinstance(index, (list, tuple)) and len(index) == 1):
            return None
        ids = index[0]
    elif node.op == "call_function" and node.target is torch.embedding and len(node.args) == 2 and not node.kwargs:
        table, ids = node.args  # torch.embedding(weight, ids): F.embedding's own op, arguments swapped
    elif (node.op == "call_function" and node.target in (torch.index_select, _aten.index_select.default)) or (
            node.op == "call_method" and node.target == "index_select"):
        args, kwargs = node.args, node.kwargs
        table = args[0] if args else kwargs.get("input")
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        ids = args[2] if len(args) > 2 else kwargs.get("index")
        if not _dim0(dim):
            return None
    else:
        return None
    return (table, ids) if _is_table(gm, table) and _is_ids(ids) else None


def lift_indexed_tables(gm: fx.GraphModule) -> list[str]:
    """Rewrite every parameter table read at integer ids into `F.embedding(ids, table)` in place
    (`gm` needs `dmt.dtype` meta, from `ir.shapes.record_shapes`); returns the tables' names."""
    lifted: list[str] = []
    for node in list(gm.graph.nodes):
        found = indexed_table(gm, node)
        if found is None:
            continue
        table, ids = found
        with gm.graph.inserting_before(node):
            lookup = gm.graph.call_function(F.embedding, (ids, table))
        lookup.meta.update(node.meta)
        node.replace_all_uses_with(lookup)
        gm.graph.erase_node(node)
        lifted.append(str(table.target))
    if lifted:
        _erase_unused_one_hots(gm)
        gm.graph.lint()
        gm.recompile()
    return lifted


def _erase_unused_one_hots(gm: fx.GraphModule) -> None:
    """The one-hot matrices (and their casts) a lifted product no longer reads."""
    for node in reversed(list(gm.graph.nodes)):
        cast = node.op == "call_method" and node.target in _CASTS
        if not node.users and (cast or (node.op == "call_function" and node.target is F.one_hot)):
            gm.graph.erase_node(node)
