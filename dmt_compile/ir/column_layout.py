"""Where the batch and the columns of a `[B, C]` id matrix sit in a value derived from it by layout ops.

A `Layout` labels each dim of a value `b` (the matrix's rows: samples), `c` (its columns) or `1` (a
singleton the model inserted). It is found by walking down from the value through ops that only move
or insert dims -- transposes (`x.t()`, `x.T`, `x.mT`, `transpose(a, b)`, `permute(...)`), singleton
insertion and removal (`unsqueeze(d)`, `x[:, :, None]`, `squeeze(d)`, a `view` / `reshape` that only
adds or drops size-1 dims) -- to a 2-D value, then replaying them upwards from `(b, c)`. Element-wise
ops with constants are looked through by the caller's `below` walk (`ir.id_sources`). `ir.column_dims`
reads picks along the `c` dim of a layout as columns of the matrix. A field-major input (`[F, B]`,
`dmt.batch_dim` 1 from `ir.batch_dims`) starts from `(c, b)`: `x[i]`, `x.select(0, i)` and `x.unbind(0)[i]`
are its columns, and `x.t()` is batch-major.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.fx as fx

from dmt_compile.ir.meta import BATCH_DIM, SHAPE

__all__ = ["Layout", "column_layout", "norm_dim", "op_name", "source_dims"]

Dims = tuple[str, ...]
Step = Callable[[Dims], "Dims | None"]


@dataclass(frozen=True)
class Layout:
    source: fx.Node  # the 2-D value: an input, or a column pick of one (id_sources maps it back)
    dims: Dims  # per dim of the value: "b", "c" or "1"

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def column_dim(self) -> int:
        return self.dims.index("c")

    @property
    def width(self) -> int:
        return int(self.source.meta[SHAPE][source_dims(self.source).index("c")])


def source_dims(node: fx.Node) -> Dims:
    """The labels of a 2-D value's own dims: `(c, b)` for a field-major input (`dmt.batch_dim` 1: `[F, B]`
    ids, or an `[L, B]` time-major sequence), else `(b, c)`."""
    return ("c", "b") if node.op == "placeholder" and node.meta.get(BATCH_DIM) == 1 else ("b", "c")


def norm_dim(value: Any, rank: int) -> int | None:
    """`value` as a dim in `[0, rank)`, or None when it is not an int dim of that rank."""
    return value % rank if isinstance(value, int) and not isinstance(value, bool) and -rank <= value < rank else None


def op_name(node: fx.Node) -> str:
    """A call's op name whatever its spelling: a method's name, a function's `__name__` (`getitem`, `select`),
    an exported aten overload's packet name (`aten.permute.default` is `permute`)."""
    target = node.target
    if isinstance(target, str):
        return target
    packet = getattr(target, "overloadpacket", None)
    return getattr(packet if packet is not None else target, "__name__", "")


def _dims_arg(args: tuple) -> list[Any]:
    return list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)


def _permuted(perm: list[Any]) -> Step:
    def step(dims: Dims) -> Dims | None:
        order = [norm_dim(d, len(dims)) for d in perm]
        return tuple(dims[d] for d in order) if sorted(o for o in order if o is not None) == \
            list(range(len(dims))) and None not in order else None
    return step


def _swapped(a: Any, b: Any) -> Step:
    def step(dims: Dims) -> Dims | None:
        i, j = norm_dim(a, len(dims)), norm_dim(b, len(dims))
        if i is None or j is None:
            return None
        out = list(dims)
        out[i], out[j] = out[j], out[i]
        return tuple(out)
    return step


def _inserted(at: Any) -> Step:
    def step(dims: Dims) -> Dims | None:
        d = norm_dim(at, len(dims) + 1)
        return None if d is None else dims[:d] + ("1",) + dims[d:]
    return step


def _squeezed(at: Any) -> Step:
    def step(dims: Dims) -> Dims | None:
        if at is None:
            return tuple(d for d in dims if d != "1")
        d = norm_dim(at, len(dims))
        return None if d is None or dims[d] != "1" else dims[:d] + dims[d + 1:]
    return step


def _indexed(index: Any) -> Step | None:
    """`x[:, :, None]`, `x[..., None]`: full slices, `None` (a new singleton) and at most one Ellipsis."""
    parts = index if isinstance(index, tuple) else (index,)
    full = all(p is None or p is Ellipsis or (isinstance(p, slice) and p == slice(None)) for p in parts)
    if not full or sum(p is Ellipsis for p in parts) > 1 or None not in parts:
        return None

    def step(dims: Dims) -> Dims | None:
        taken = sum(p is not None and p is not Ellipsis for p in parts)
        expanded = [p for q in parts for p in ([slice(None)] * (len(dims) - taken) if q is Ellipsis else [q])]
        if len(expanded) - expanded.count(None) > len(dims):
            return None
        expanded += [slice(None)] * (len(dims) - (len(expanded) - expanded.count(None)))
        out, i = [], 0
        for p in expanded:
            if p is None:
                out.append("1")
            else:
                out.append(dims[i])
                i += 1
        return tuple(out)
    return step


def _reshaped(node: fx.Node) -> Step | None:
    """A `view` / `reshape` whose shape is its input's with size-1 dims added or dropped (sizes > 1 kept in order)."""
    inner, outer = node.args[0].meta.get(SHAPE), node.meta.get(SHAPE)
    if inner is None or outer is None or [s for s in inner if s != 1] != [s for s in outer if s != 1]:
        return None

    def step(dims: Dims) -> Dims | None:
        if len(dims) != len(inner) or any(s == 1 and d != "1" for s, d in zip(inner, dims)):
            return None  # a batch or column dim of size 1 in the example: its place is ambiguous
        kept = iter(d for s, d in zip(inner, dims) if s != 1)
        return tuple("1" if s == 1 else next(kept) for s in outer)
    return step


def _step(node: fx.Node) -> tuple[fx.Node, Step] | None:
    """(the value `node` moves dims of, how it moves them), or None when `node` is not a layout op."""
    if node.op not in ("call_function", "call_method") or not node.args or not isinstance(node.args[0], fx.Node):
        return None
    name, rest, inner = op_name(node), node.args[1:], node.args[0]
    if node.op == "call_function" and node.target is getattr and rest and rest[0] in ("T", "mT"):
        return inner, (lambda dims: tuple(reversed(dims))) if rest[0] == "T" else _swapped(-2, -1)
    if node.op == "call_function" and name in ("getitem",) and len(rest) == 1:
        step = _indexed(rest[0])
        return (inner, step) if step is not None else None
    if node.kwargs:
        return None
    if name == "t" and not rest:
        return inner, lambda dims: tuple(reversed(dims)) if len(dims) == 2 else None
    if name == "transpose" and len(rest) == 2:
        return inner, _swapped(*rest)
    if name == "permute" and rest:
        return inner, _permuted(_dims_arg(rest))
    if name == "unsqueeze" and len(rest) == 1:
        return inner, _inserted(rest[0])
    if name == "squeeze" and len(rest) <= 1:
        return inner, _squeezed(rest[0] if rest else None)
    if name in ("view", "reshape") and (node.op == "call_method" or node.target is torch.reshape):
        step = _reshaped(node)
        return (inner, step) if step is not None else None
    return None


def column_layout(node: Any, below: Callable[[fx.Node], fx.Node]) -> Layout | None:
    """The layout of `node` over the 2-D value under its layout ops (looking through `below`'s
    element-wise ops at each step), or None when it has none."""
    if not isinstance(node, fx.Node):
        return None
    steps: list[Step] = []
    for _ in range(8):
        node = below(node)
        found = _step(node)
        if found is None:
            break
        node, step = found
        steps.append(step)
    shape = node.meta.get(SHAPE)
    if shape is None or len(shape) != 2:
        return None
    dims: Dims | None = source_dims(node)
    for step in reversed(steps):
        dims = step(dims)
        if dims is None or dims.count("c") != 1 or dims.count("b") != 1:
            return None
    return Layout(node, dims)
