"""detect: find every embedding lookup, where its ids come from, and how lookups group.

Analysis only (plus `dmt.*` annotations on lookup nodes). Two lookups land in one *feature
group* when they share a table or share an id source (an atom, see `id_sources`); a group is
never split across towers. Also found: the `torch.cat`/`torch.stack` sites where looked-up
embeddings enter the interaction (used for direct feed of compressed towers), and "dense
embedding" features that enter those sites without a lookup (`Linear(1, D)` per dense feature).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import DetectionError
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.ir.id_sources import atoms_of
from dmt_compile.ir.lookups import classify_lookup
from dmt_compile.ir.union_find import UnionFind

__all__ = ["Detect", "Detection", "Lookup", "FeatureGroup", "CombineSite", "find_combine_sites"]

_VIEW_METHODS = {"unsqueeze", "view", "reshape", "squeeze", "flatten", "contiguous", "float"}


@dataclass(frozen=True)
class Lookup:
    index: int
    node: str
    kind: str  # embedding | embedding_bag | functional_embedding | ebc
    tables: tuple[str, ...]
    id_args: tuple[Any, ...]  # positions (int) or keyword names (str) of the id tensors
    features: tuple[str, ...]
    rows: int
    dim: int
    out_shape: tuple[int, ...]

    @property
    def width(self) -> int:
        """Elements per sample of the lookup's output."""
        n = 1
        for s in self.out_shape[1:]:
            n *= s
        return n


@dataclass(frozen=True)
class FeatureGroup:
    index: int
    features: tuple[str, ...]
    tables: tuple[str, ...]
    lookups: tuple[int, ...]
    width: int  # elements looked up per sample
    table_elements: int  # rows x dim summed over tables
    reasons: tuple[str, ...]  # why these features must stay together


@dataclass(frozen=True)
class CombineSite:
    """A cat/stack whose list holds (views of) lookup outputs: where embeddings enter the interaction."""

    node: str
    dim: int
    elements: tuple[tuple[int | None, tuple[int, ...]], ...]  # (lookup index or None, element shape)


@dataclass(frozen=True)
class Detection:
    batch_size: int
    lookups: tuple[Lookup, ...]
    groups: tuple[FeatureGroup, ...]
    features: tuple[str, ...]
    dense_features: tuple[str, ...]
    combine_sites: tuple[CombineSite, ...] = field(default=())

    def lookup_by_node(self) -> dict[str, Lookup]:
        return {lk.node: lk for lk in self.lookups}


def _feature_name(atom: tuple[str, Any], display: dict[str, str]) -> str:
    name, column = atom
    base = display.get(name, name)
    if column is None:
        return base
    if isinstance(column, str):
        return column
    return f"{base}[:,{column}]"


def _leaf_feature_names(gm: fx.GraphModule, spec) -> dict[str, str]:
    names = {leaf.name: leaf.feature for leaf in spec.leaves}
    counts: dict[str, int] = {}
    for v in names.values():
        counts[v] = counts.get(v, 0) + 1
    # fall back to the placeholder name when two leaves share a short name
    return {k: (v if counts[v] == 1 else k) for k, v in names.items()}


def _batch_size(reference_output: Any) -> int:
    stack = [reference_output]
    while stack:
        value = stack.pop(0)
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
        if type(value).__name__ == "KeyedTensor":
            return int(value.values().shape[0])
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
    raise DetectionError(
        "the model output has no tensor with a batch dimension",
        "dmt_compile needs a batch-major output (e.g. [B, 1] logits)",
    )


class Detect(Pass):
    name = "detect"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        spec = ctx.options["input_spec"]
        display = _leaf_feature_names(gm, spec)
        batch = _batch_size(ctx.reference_output)
        cache: dict[fx.Node, frozenset] = {}
        raw = []
        for node in gm.graph.nodes:
            kind = classify_lookup(gm, node)
            if kind is not None:
                raw.append((node, kind))
        if not raw:
            raise DetectionError(
                "the model has no embedding lookup (nn.Embedding, nn.EmbeddingBag, F.embedding, "
                "torchrec EmbeddingBagCollection)",
                "dmt_compile splits embedding lookups into towers; pass a model with sparse features",
            )
        lookups, atoms_per_lookup = [], []
        for i, (node, kind) in enumerate(raw):
            # features and grouping follow the ids themselves; offsets / per-sample weights may be shared
            atoms = atoms_of(kind.id_nodes(node)[0], cache) if kind.id_nodes(node) else frozenset()
            shape = node.meta.get("dmt.shape") or ()
            if kind.kind == "ec":  # unpooled sequences (a dict of JaggedTensors): cost = width per id
                shape = (batch, kind.dim)
            elif not shape or shape[0] != batch:
                raise DetectionError(
                    f"lookup {node.name} ({kind.kind}) returns shape {shape}, which is not batch-major "
                    f"(batch size {batch})",
                    "dmt_compile needs lookups whose output has the batch as dim 0",
                )
            features = tuple(sorted({_feature_name(a, display) for a in atoms}, key=_natural))
            lookups.append(
                Lookup(i, node.name, kind.kind, kind.tables, kind.id_args, features, kind.rows, kind.dim, tuple(shape))
            )
            atoms_per_lookup.append(atoms)
            node.meta["dmt.lookup"] = i
            node.meta["dmt.features"] = features
        groups = _group(lookups, atoms_per_lookup, display)
        for g in groups:
            for i in g.lookups:
                raw[i][0].meta["dmt.group"] = g.index
        sites, dense = find_combine_sites(gm, {lk.node: lk.index for lk in lookups}, cache, display)
        features = tuple(f for g in groups for f in g.features)
        ctx.detection = Detection(batch, tuple(lookups), groups, features, dense, sites)
        return PassResult(gm, False)


def _natural(name: str):
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


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
                    f"several lookups read the ids of {_feature_name(atom, display)}"
                )
            owner_of_atom.setdefault(key, lk.index)
        if len(lk.features) > 1 and lk.kind in ("ebc", "ec"):
            reasons.setdefault(lk.index, []).append(f"table {lk.tables[0]} serves {', '.join(lk.features)}")
        elif len(lk.features) > 1:
            reasons.setdefault(lk.index, []).append(
                f"one lookup ({lk.node}) reads ids of {len(lk.features)} features at once "
                "(e.g. one table with offsets in the input); it cannot be split"
            )
    out = []
    for gi, members in enumerate(uf.groups()):
        members = sorted(members)
        feats = sorted({f for i in members for f in lookups[i].features}, key=_natural)
        tables = sorted({t for i in members for t in lookups[i].tables})
        rows_dim = {t: lookups[i].rows * lookups[i].dim for i in members for t in lookups[i].tables}
        why = tuple(dict.fromkeys(r for i in members for r in reasons.get(i, [])))
        out.append(
            FeatureGroup(
                gi, tuple(feats), tuple(tables), tuple(members),
                sum(lookups[i].width for i in members), sum(rows_dim.values()), why,
            )
        )
    return tuple(out)


def _view_chain_root(node: fx.Node) -> fx.Node:
    while node.op == "call_method" and node.target in _VIEW_METHODS and len(node.users) == 1:
        node = node.args[0]
    return node


def find_combine_sites(gm: fx.GraphModule, lookup_index: dict[str, int], cache, display):
    """Cat/stack nodes whose list elements are (views of) lookup outputs, and dense-embedding features."""
    sites, dense = [], []
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target not in (torch.cat, torch.stack):
            continue
        items = node.args[0] if node.args else node.kwargs.get("tensors")
        if not isinstance(items, (list, tuple)):
            continue
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        elements, hit = [], False
        for item in items:
            root = _view_chain_root(item) if isinstance(item, fx.Node) else item
            idx = lookup_index.get(root.name) if isinstance(root, fx.Node) else None
            hit |= idx is not None
            shape = item.meta.get("dmt.shape") if isinstance(item, fx.Node) else None
            elements.append((idx, tuple(shape or ())))
        if not hit:
            continue
        sites.append(CombineSite(node.name, int(dim), tuple(elements)))
        for item, (idx, _) in zip(items, elements):
            if idx is None and isinstance(item, fx.Node):
                for name, column in sorted(atoms_of(item, cache), key=str):
                    feat = display.get(name, name) + ("" if column is None else f"[:,{column}]")
                    if feat not in dense:
                        dense.append(feat)
    return tuple(sites), tuple(dense)
