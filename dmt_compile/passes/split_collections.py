"""split-collections: one lookup per table for torchrec Embedding(Bag)Collections.

An EBC looks up many tables in one call, so detection would see one lookup and the planner one
tower. This pass rewrites `kt = ebc(kjt)` into

    parts = kjt_split(kjt, [[keys of table 0], [keys of table 1], ...])
    kt_i  = dmt.ebc_<name>_<table>(parts[i])       # sub-collection sharing the table's module
    kt    = kt_merge([kt_0, kt_1, ...], original key order)

so every table is its own lookup, its KJT keys are its features, and the merged KeyedTensor is
exactly the original. Models without EBCs are untouched.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import torch.fx as fx

from dmt_compile.ir.graph import call_module, tag
from dmt_compile.ir.meta import ID_ATOMS
from dmt_compile.ir.module_paths import collection_piece
from dmt_compile.ir.torchrec_ops import jt_merge, kjt_split, kt_merge, sub_collection
from dmt_compile.passes.base import Pass, PassContext, PassResult

__all__ = ["SplitCollections"]

_COLLECTIONS = ("EmbeddingBagCollection", "EmbeddingCollection")


def _configs(collection) -> list:
    if type(collection).__name__ == "EmbeddingBagCollection":
        return list(collection.embedding_bag_configs())
    return list(collection.embedding_configs())


def _collection_calls(gm: fx.GraphModule) -> list[fx.Node]:
    """Calls of a torchrec collection that look up more than one table."""
    return [n for n in gm.graph.nodes if n.op == "call_module"
            and type(gm.get_submodule(n.target)).__name__ in _COLLECTIONS
            and len(_configs(gm.get_submodule(n.target))) > 1]


@dataclass(frozen=True)
class SplitCollections(Pass):
    name = "split-collections"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        targets = _collection_calls(gm)
        for node in targets:
            self._split(gm, node)
        return PassResult(gm, bool(targets))

    def _split(self, gm: fx.GraphModule, node: fx.Node) -> None:
        collection = gm.get_submodule(node.target)
        pooled = type(collection).__name__ == "EmbeddingBagCollection"
        configs = _configs(collection)
        kjt = node.args[0] if node.args else node.kwargs["features"]
        source = kjt.target if kjt.op == "placeholder" else kjt.name
        keys = [f for c in configs for f in c.feature_names]
        base = re.sub(r"\W", "_", node.target)
        graph = gm.graph
        with graph.inserting_before(node):
            split = tag(graph.call_function(kjt_split, (kjt, [list(c.feature_names) for c in configs]),
                                            name=f"{base}_split"), self.name)
            parts = []
            for i, cfg in enumerate(configs):
                item = tag(graph.call_function(operator.getitem, (split, i), name=f"{base}_kjt_{cfg.name}"),
                           self.name)
                item.meta[ID_ATOMS] = frozenset((source, k) for k in cfg.feature_names)
                path = collection_piece(base, cfg.name)
                gm.add_submodule(path, sub_collection(collection, [cfg.name]))
                parts.append(tag(call_module(graph, path, (item,), f"{base}_{cfg.name}"), self.name))
            merge = kt_merge if pooled else jt_merge
            merged = tag(graph.call_function(merge, (parts, keys), name=f"{base}_merged"), self.name)
        node.replace_all_uses_with(merged)
        graph.erase_node(node)

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        left = [n.name for n in _collection_calls(gm)]
        if left:
            raise AssertionError(f"collection calls {left} still look up several tables in one call")
