"""A lookup whose ids carry the batch on a later dim (time-major `[L, B]` ids) is looked up batch-first.

Towers route ids per sample, so every lookup must be batch-major. A time-major sequence (`[L, B]`
ids, the RNN convention `batch_first=False`) looks up to `[L, B, D]`, and a field-major id matrix
(`[F, B]`) looked up whole to `[F, B, D]`. The ids' batch dim `d` is found by `ir.batch_dims` (the
input's batch dim from the example, followed through layout ops; else the one dim of the batch's
size), and the lookup becomes

    out = emb(ids.movedim(d, 0)).movedim(0, d).contiguous()

a `[B, L, D]` lookup moved back to the model's layout (memory order too, so a reduction over `L` sums
in the model's order), so the rest of the graph is unchanged and exact. Called by `batch-major-lookups` (`passes/flat_sequences.py`) for each lookup; lookups that
pool (EmbeddingBag) are left to detection, which names them when their output is not batch-major.
"""
from __future__ import annotations

import torch.fx as fx

from dmt_compile.ir.batch_dims import batch_dim_of
from dmt_compile.ir.graph import tag
from dmt_compile.ir.id_sources import below_elementwise
from dmt_compile.ir.lookups import LookupKind, id_nodes
from dmt_compile.ir.meta import SHAPE

__all__ = ["lookup_batch_first"]

_ID_SHAPED = ("embedding", "functional_embedding")  # lookups whose output is [*ids.shape, dim]


def lookup_batch_first(gm: fx.GraphModule, node: fx.Node, kind: LookupKind, batch: int, by: str) -> bool:
    """Rewrite `node` (a lookup of ids whose batch dim is d > 0) to look up `ids.movedim(d, 0)` and move
    the result back; True when it did. `by` names the pass for the new nodes' provenance."""
    shape = node.meta.get(SHAPE) or ()
    ids = id_nodes(node, kind.id_args)
    if kind.kind not in _ID_SHAPED or len(shape) < 3 or shape[0] == batch or len(ids) != 1:
        return False
    id_shape = ids[0].meta.get(SHAPE) or ()
    d = batch_dim_of(ids[0], batch, below_elementwise) if len(id_shape) >= 2 else None
    if d is None or d == 0 or d >= len(id_shape) or shape[d] != batch:
        return False
    graph = gm.graph
    with graph.inserting_before(node):
        moved = tag(graph.call_method("movedim", (ids[0], d, 0)), by)
    node.replace_input_with(ids[0], moved)
    with graph.inserting_after(node):
        moved_back = tag(graph.call_method("movedim", (node, 0, d)), by)
    with graph.inserting_after(moved_back):  # the model's memory layout: its reductions sum in the same order
        back = tag(graph.call_method("contiguous", (moved_back,)), by)
    node.replace_all_uses_with(back, delete_user_cb=lambda u: u is not moved_back)
    return True
