"""`Detection`: the embedding lookups of a captured graph, their features and feature groups.

Produced by the `detect` pass, read by planning, the rewrite, lowering and batching. A lookup
is identified in the graph by its node name and by `node.meta["dmt.lookup"]` (its index here).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from dmt_compile.ir.lookups import BAG_KINDS, COLLECTION_KINDS, id_nodes
from dmt_compile.ir.meta import LOOKUP

__all__ = ["Lookup", "FeatureGroup", "Detection"]


@dataclass(frozen=True)
class Lookup:
    index: int
    node: str
    kind: str  # see ir.lookups.LookupKind.kind
    tables: tuple[str, ...]
    id_args: tuple[Any, ...]  # positions (int) or keyword names (str) of the id tensors
    features: tuple[str, ...]
    rows: int
    dim: int
    out_shape: tuple[int, ...]
    mode: str | None = None  # pooling of bag lookups
    include_last_offset: bool = False

    @property
    def width(self) -> int:
        """Elements per sample of the lookup's output."""
        return math.prod(self.out_shape[1:])

    @property
    def is_bag(self) -> bool:
        return self.kind in BAG_KINDS

    @property
    def is_collection(self) -> bool:
        return self.kind in COLLECTION_KINDS

    def id_nodes(self, node: fx.Node) -> list[fx.Node]:
        """The id arguments of this lookup's `node` (ids, offsets, per-sample weights, KJT)."""
        return id_nodes(node, self.id_args)


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
class Detection:
    batch_size: int
    lookups: tuple[Lookup, ...]
    groups: tuple[FeatureGroup, ...]
    features: tuple[str, ...]
    dense_features: tuple[str, ...]

    def lookup_by_node(self) -> dict[str, Lookup]:
        return {lk.node: lk for lk in self.lookups}

    def lookup_of(self, node: fx.Node) -> Lookup | None:
        """The lookup a graph node performs (via its `dmt.lookup` annotation), else None."""
        index = node.meta.get(LOOKUP)
        return None if index is None else self.lookups[index]
