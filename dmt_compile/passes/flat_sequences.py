"""batch-major-lookups: a sequence feature fed flattened (`[B*L]` ids) is looked up per sample.

Some models receive a multi-valued feature as one flat id vector of `B*L` ids (sample i's `L` ids
at rows `i*L ... i*L+L-1`), look it up to `[B*L, D]` and only then view it back to `[B, L, D]` to
pool it with a mask. Towers route ids per sample, so the lookup must be batch-major. The batch
dimension of such a lookup follows from the shape relation the model itself imposes: the view of
its output whose leading dims are `(B, L)` (`L` a constant of the model, or `B` the batch size of
another input). This pass rewrites

    out = emb(ids)                      # [B*L, D]
into
    out = emb(ids.reshape(B, L)).reshape(-1, D)

with `B`, `L` as the model's view wrote them (one of them may be -1), so the lookup is an ordinary
`[B, L]` sequence lookup and the rest of the graph is unchanged (exact). A lookup whose rows are
not a multiple of the batch, or that no later view relates to the batch, is left alone (detection
then names it).

Several ids per flat row (`[B*L, H]` ids, `[B*L, H, D]` out: H hashes of each id, Bloom embeddings) are
the same when the model reduces the H embeddings of a row (`sum` / `mean` over dim 1) before the view
to `(B, L, ...)`: the ids are read as `[B, L*H]` and the lookup viewed back to `[B*L, H, D]`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from dmt_compile.ir.constants import Constants
from dmt_compile.ir.graph import tag
from dmt_compile.ir.lookups import classify_lookup, id_nodes
from dmt_compile.ir.meta import SHAPE
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.passes.batch_dim_lookups import lookup_batch_first

__all__ = ["BatchMajorLookups"]

_VIEWS = ("view", "reshape")


def _batch(ctx: PassContext) -> int:
    from dmt_compile.passes.detect import batch_size_of

    return batch_size_of(ctx.reference_output)


_REDUCTIONS = ("sum", "mean")


def _row_reductions(lookup: fx.Node, rows: int, width: int) -> list[fx.Node]:
    """Users of a `[rows, H, D]` lookup that reduce its H embeddings per row to `[rows, D]`."""
    out = []
    for user in lookup.users:
        reduces = (user.op == "call_method" and user.target in _REDUCTIONS) or (
            user.op == "call_function" and getattr(user.target, "__name__", "") in _REDUCTIONS)
        dim = user.args[1] if len(user.args) > 1 else user.kwargs.get("dim")
        if reduces and dim in (1, -2) and tuple(user.meta.get(SHAPE) or ()) == (rows, width):
            out.append(user)
    return out


def _model_view(lookup: fx.Node, batch: int, rows: int, width: int, constants: Constants) -> tuple[Any, Any] | None:
    """(batch arg, L arg) of the user view that splits the lookup's rows into (B, L) -- `[B, L, D]`, or
    `[B, L*D]` (the L embeddings of a sample side by side) -- else None. A `[rows, H, D]` lookup is
    related through the reduction of its H embeddings per row (module docstring)."""
    rank = len(lookup.meta.get(SHAPE) or ())
    sources = [lookup] if rank == 2 else _row_reductions(lookup, rows, width) if rank == 3 else []
    for user in (u for source in sources for u in source.users):
        if user.op != "call_method" or user.target not in _VIEWS:
            continue
        dims = list(user.args[1:]) if len(user.args) > 2 or not isinstance(user.args[1], (tuple, list)) \
            else list(user.args[1])
        shape = user.meta.get(SHAPE) or ()
        if len(dims) >= 3 and len(shape) >= 3 and shape[0] == batch and shape[0] * shape[1] == rows:
            length_value = constants.value(dims[1])
        elif len(dims) == 2 and len(shape) == 2 and shape[0] == batch and shape[1] == rows // batch * width:
            side_by_side = constants.value(dims[1])
            length_value = side_by_side // width if isinstance(side_by_side, int) and side_by_side % width == 0 \
                else None
        else:
            continue
        if isinstance(length_value, int) and length_value > 0:
            return (-1, length_value)
        b = dims[0]
        if isinstance(b, fx.Node) and not constants.is_constant(b):
            return (b, -1)  # B from another input (x.shape[0]): rows of a sample stay together
    return None


def _flattened_from(ids: fx.Node, batch: int, per_sample: int) -> fx.Node | None:
    """`t` when `ids` is `t.view(-1)` / `t.reshape(-1)` / `t.flatten()` of a `[B, L]` matrix `t`: the ids
    were a per-sample matrix all along, and the rewrite reads it directly."""
    flatten = (ids.op == "call_method" and ids.target in (*_VIEWS, "flatten")) or \
        (ids.op == "call_function" and getattr(ids.target, "__name__", "") == "flatten")
    if not flatten or not ids.args or not isinstance(ids.args[0], fx.Node):
        return None
    rest = [a for a in ids.args[1:]]
    if ids.target in _VIEWS and rest not in ([-1], [(-1,)], [[-1]]):
        return None
    if ids.target not in _VIEWS and (rest not in ([], [0]) or ids.kwargs):
        return None
    source = ids.args[0]
    return source if tuple(source.meta.get(SHAPE) or ()) == (batch, per_sample) else None


@dataclass(frozen=True)
class BatchMajorLookups(Pass):
    name = "batch-major-lookups"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        batch, constants, changed = _batch(ctx), Constants(gm), False
        for node in list(gm.graph.nodes):
            kind = classify_lookup(gm, node)
            if kind is not None and lookup_batch_first(gm, node, kind, batch, self.name):
                changed = True  # time-major [L, B] ids (passes/batch_dim_lookups.py)
                continue
            shape = tuple(node.meta.get(SHAPE) or ())
            if kind is None or kind.kind not in ("embedding", "functional_embedding") or len(shape) not in (2, 3):
                continue
            ids = id_nodes(node, kind.id_args)
            if shape[0] == batch or shape[0] % batch or not ids or tuple(ids[0].meta.get(SHAPE) or ()) != shape[:-1]:
                continue
            relation = _model_view(node, batch, shape[0], shape[-1], constants)
            if relation is not None:
                self._rewrite(gm, node, ids[0], relation, shape, batch)
                changed = True
        return PassResult(gm, changed)

    def _rewrite(self, gm: fx.GraphModule, lookup: fx.Node, ids: fx.Node, relation, shape, batch: int) -> None:
        graph = gm.graph
        per_sample = _flattened_from(ids, batch, shape[0] // batch) if len(shape) == 2 else None
        if per_sample is None:
            b, length = relation
            if len(shape) == 3:  # [B*L, H] ids read as [B, L*H]
                b, length = (b, -1) if isinstance(b, fx.Node) else (-1, length * shape[1])
            with graph.inserting_before(lookup):
                per_sample = tag(graph.call_method("reshape", (ids, b, length)), self.name)
        lookup.replace_input_with(ids, per_sample)
        with graph.inserting_after(lookup):
            flat = tag(graph.call_method("reshape", (lookup, -1, *shape[1:])), self.name)
        lookup.replace_all_uses_with(flat, delete_user_cb=lambda u: u is not flat)
