"""detect: find every embedding lookup, where its ids come from, and how lookups group.

Analysis only (plus `dmt.lookup` / `dmt.features` / `dmt.group` on lookup nodes). Two lookups
land in one *feature group* when they share a table or share an id source (an atom, see
`ir.id_sources`); a group is never split across towers. Also found: "dense embedding" features,
inputs that enter the interaction's `torch.cat`/`torch.stack` next to looked-up embeddings
without a lookup (`Linear(1, D)` per dense feature), and lookups of constant ids (positional
embeddings: `pos(torch.arange(L))`); they stay data-parallel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import DetectionError
from dmt_compile.ir.detection import Detection, FeatureGroup, Lookup
from dmt_compile.ir.graph import is_view_step
from dmt_compile.ir.batch_dims import batch_dim_of
from dmt_compile.ir.id_sources import atoms_of, below_elementwise, column_text
from dmt_compile.ir.lookups import BAG_KINDS, classify_lookup, id_nodes
from dmt_compile.ir.meta import FEATURES, GROUP, INPUT_PATH, LOOKUP, SHAPE
from dmt_compile.ir.shapes import output_batch_size
from dmt_compile.ir.source_location import source_location
from dmt_compile.ir.union_find import UnionFind
from dmt_compile.passes.base import Pass, PassContext, PassResult

__all__ = ["Detect", "batch_size_of"]


def _feature_name(atom: tuple[str, Any], display: dict[str, str]) -> str:
    name, column = atom
    base = display.get(name, name)
    if column is None:
        return base
    if isinstance(column, str):
        return column
    return base + column_text(column)


def _leaf_feature_names(spec) -> dict[str, str]:
    names = {leaf.name: leaf.feature for leaf in spec.leaves}
    counts: dict[str, int] = {}
    for v in names.values():
        counts[v] = counts.get(v, 0) + 1
    # fall back to the placeholder name when two leaves share a short name
    return {k: (v if counts[v] == 1 else k) for k, v in names.items()}


def batch_size_of(reference_output: Any) -> int:
    """The batch size of a model output: dim 0 of its first tensor (or KeyedTensor, or dataclass field)."""
    batch = output_batch_size(reference_output)
    if batch is not None:
        return batch
    raise DetectionError(
        "the model output has no tensor with a batch dimension",
        "dmt_compile needs a batch-major output (e.g. [B, 1] logits)",
    )


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Detect(Pass):
    name = "detect"
    produces = (Detection,)

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        display = _leaf_feature_names(ctx.input_spec)
        batch = batch_size_of(ctx.reference_output)
        cache: dict[fx.Node, frozenset] = {}
        raw, constant = [], []
        for n in gm.graph.nodes:
            kind = classify_lookup(gm, n)
            if kind is None:
                continue
            ids = id_nodes(n, kind.id_args)
            if ids and not atoms_of(ids[0], cache):  # e.g. positions: torch.arange(L) looked up, no input ids
                constant.append(f"{n.name} (lookup of constant ids)")
                continue
            raw.append((n, kind))
        if not raw and constant:
            names = ", ".join(c.split(" ")[0] for c in constant)
            raise DetectionError(
                f"every embedding lookup reads constant ids ({names}): the model embeds whole tables "
                "(e.g. E(torch.arange(n))) and indexes their output with the inputs, so no lookup follows a sample",
                "look the inputs' ids up directly, E(ids) instead of E(torch.arange(n))[ids]; a model that scores "
                "against a whole catalogue reads that table whole, which towers do not split")
        if not raw:
            raise DetectionError(
                "the model has no embedding lookup (nn.Embedding, nn.EmbeddingBag, F.embedding, "
                "torchrec EmbeddingBagCollection)",
                "dmt_compile splits embedding lookups into towers; pass a model with sparse features",
            )
        lookups, atoms_per_lookup = [], []
        for i, (node, kind) in enumerate(raw):
            ids = id_nodes(node, kind.id_args)
            # features and grouping follow the ids themselves; offsets / per-sample weights may be shared
            atoms = atoms_of(ids[0], cache) if ids else frozenset()
            shape = _lookup_shape(node, kind, batch)
            features = tuple(sorted({_feature_name(a, display) for a in atoms}, key=_natural))
            lookups.append(Lookup(i, node.name, kind.kind, kind.tables, kind.id_args, features, kind.rows, kind.dim,
                                  shape, kind.mode, kind.include_last_offset))
            atoms_per_lookup.append(atoms)
            node.meta[LOOKUP] = i
            node.meta[FEATURES] = features
        groups = _group(lookups, atoms_per_lookup, display)
        for g in groups:
            for i in g.lookups:
                raw[i][0].meta[GROUP] = g.index
        dense = _dense_features(gm, {lk.node for lk in lookups}, cache, display) + tuple(constant)
        features = tuple(f for g in groups for f in g.features)
        return PassResult(gm, False, (Detection(batch, tuple(lookups), groups, features, dense),))

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        det = ctx.get(Detection)
        by_name = {n.name: n for n in gm.graph.nodes}
        for lk in det.lookups:
            node = by_name[lk.node]
            if node.meta.get(LOOKUP) != lk.index or node.meta.get(GROUP) is None:
                raise AssertionError(f"lookup {lk.node} is not annotated")


def _lookup_shape(node: fx.Node, kind, batch: int) -> tuple[int, ...]:
    shape = node.meta.get(SHAPE) or ()
    if kind.kind == "ec":  # unpooled sequences (a dict of JaggedTensors): cost = width per id
        return (batch, kind.dim)
    if not shape or shape[0] != batch:
        _refuse_batch_on_later_dim(node, kind, batch)
        _refuse_ids_without_batch(node, kind, batch)
        raise DetectionError(
            f"lookup {node.name} ({kind.kind}) returns shape {shape}, which is not batch-major (batch size {batch})"
            + source_location(node),
            "feed its ids batch-major ([B] or [B, L]); a flattened [B*L] sequence is supported when the model "
            "views the lookup back to [B, L, D] with a constant L",
        )
    return tuple(shape)


def _refuse_batch_on_later_dim(node: fx.Node, kind, batch: int) -> None:
    """A lookup whose ids carry the batch on dim d > 0 that `batch-major-lookups` could not move first (a bag
    of `[L, B]` ids pools each position across the samples): name the ids, their batch dim and the fix."""
    ids = id_nodes(node, kind.id_args)
    d = batch_dim_of(ids[0], batch, below_elementwise) if ids and len(ids[0].meta.get(SHAPE) or ()) >= 2 else None
    if d is None or d == 0:
        return
    source = ids[0].meta.get(INPUT_PATH, ids[0].name)
    raise DetectionError(
        f"lookup {node.name} ({kind.kind}) reads ids {source} of shape {tuple(ids[0].meta[SHAPE])} whose batch "
        f"is dim {d} (time-major or field-major), and {'pools them' if kind.kind in BAG_KINDS else 'its output'} "
        f"across samples{source_location(node)}",
        f"pass these ids batch-first ([B, ...], e.g. {source}.movedim({d}, 0) in the model or its inputs), so "
        "each sample's ids are looked up together",
    )


def _refuse_ids_without_batch(node: fx.Node, kind, batch: int) -> None:
    """Ids with no dimension that carries samples (no dim of the batch size, nor a multiple of it): the same
    ids for every sample, e.g. one vector of candidates scored against each sample."""
    ids = id_nodes(node, kind.id_args)
    shape = tuple(ids[0].meta.get(SHAPE) or ()) if ids else ()
    if not shape or any(s == batch or (s and s % batch == 0) for s in shape):
        return
    source = ids[0].meta.get(INPUT_PATH, ids[0].name)
    raise DetectionError(
        f"lookup {node.name} ({kind.kind}) reads ids {source} of shape {shape}, which have no batch dimension "
        f"(batch size {batch}): the same ids serve every sample, e.g. one list of candidates to score"
        + source_location(node),
        "give each sample its own ids ([B, K], e.g. ids.expand(B, -1)), or look such shared ids up outside the "
        "model; towers route ids per sample",
    )


def _group(lookups: list[Lookup], atoms_per_lookup: list[frozenset], display) -> tuple[FeatureGroup, ...]:
    uf = UnionFind(range(len(lookups)))
    reasons: dict[int, list[str]] = {}
    owner_of_table: dict[str, int] = {}
    whole_inputs = {a[0] for atoms in atoms_per_lookup for a in atoms if a[1] is None}
    owner_of_atom: dict[Any, int] = {}
    for lk, atoms in zip(lookups, atoms_per_lookup):
        for table in lk.tables:
            if table in owner_of_table and uf.union(owner_of_table[table], lk.index):
                reasons.setdefault(lk.index, []).append(f"table {table} is shared by several lookups")
            owner_of_table.setdefault(table, lk.index)
        for atom in sorted(atoms, key=str):  # sorted: set order varies with the process's hash seed
            key = atom[0] if atom[0] in whole_inputs else atom
            if key in owner_of_atom and uf.union(owner_of_atom[key], lk.index):
                reasons.setdefault(lk.index, []).append(
                    f"several lookups read the ids of {_feature_name(atom, display)}")
            owner_of_atom.setdefault(key, lk.index)
        whole = [a for a in atoms if a[1] is None]
        fields = lk.out_shape[1] if len(lk.out_shape) == 3 else 1
        if len(lk.features) == 1 and whole and fields > 1 and not lk.is_collection:
            reasons.setdefault(lk.index, []).append(
                f"one lookup ({lk.node}) reads {fields} fields ({lk.features[0]}[:,0..{fields - 1}]) from table "
                f"{lk.tables[0]} with no offsets the model holds; pass table_ranges= to split them")
        if len(lk.features) > 1 and lk.is_collection:
            reasons.setdefault(lk.index, []).append(f"table {lk.tables[0]} serves {', '.join(lk.features)}")
        elif len(lk.features) > 1:
            reasons.setdefault(lk.index, []).append(
                f"one lookup ({lk.node}) reads ids of {len(lk.features)} features at once "
                "(e.g. one table with offsets in the input); it cannot be split")
    out = []
    for gi, members in enumerate(uf.groups()):
        members = sorted(members)
        feats = sorted({f for i in members for f in lookups[i].features}, key=_natural)
        tables = sorted({t for i in members for t in lookups[i].tables})
        rows_dim = {t: lookups[i].rows * lookups[i].dim for i in members for t in lookups[i].tables}
        why = tuple(dict.fromkeys(r for i in members for r in reasons.get(i, [])))
        out.append(FeatureGroup(gi, tuple(feats), tuple(tables), tuple(members),
                                sum(lookups[i].width for i in members), sum(rows_dim.values()), why))
    return tuple(out)


def _view_chain_root(node: fx.Node) -> fx.Node:
    while is_view_step(node) and len(node.users) == 1:
        node = node.args[0]
    return node


def _dense_features(gm: fx.GraphModule, lookup_names: set[str], cache, display) -> tuple[str, ...]:
    """Inputs that enter a cat/stack next to (views of) lookup outputs without being looked up."""
    dense: list[str] = []
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in (torch.cat, torch.stack):
            continue
        items = node.args[0] if node.args else node.kwargs.get("tensors")
        if not isinstance(items, (list, tuple)):
            continue
        roots = [_view_chain_root(i) if isinstance(i, fx.Node) else None for i in items]
        if not any(r is not None and r.name in lookup_names for r in roots):
            continue
        for item, root in zip(items, roots):
            if root is None or root.name in lookup_names:
                continue
            for name, column in sorted(atoms_of(item, cache), key=str):
                feat = display.get(name, name) + column_text(column)
                if feat not in dense:
                    dense.append(feat)
    return tuple(dense)
