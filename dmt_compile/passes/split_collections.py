"""split-collections: one lookup per table for torchrec Embedding(Bag)Collections.

An EBC looks up many tables in one call, so detection would see one lookup and the planner one
tower. This pass rewrites `kt = ebc(kjt)` into

    parts = kjt_split(kjt, [[keys of table 0], [keys of table 1], ...])
    kt_i  = dmt.ebc_<name>_<table>(parts[i])       # sub-collection sharing the table's module
    kt    = kt_merge([kt_0, kt_1, ...], original key order)

so every table is its own lookup, its KJT keys are its features, and the merged KeyedTensor is
exactly the original. Then the model's reads of the merged KeyedTensor go to the tables directly:
`kt.to_dict()[k]` and `kt[k]` become `kt_get(kt_i, k)` (kt_i: the lookup of k's table) and
`kt.values()` the `torch.cat` of those along dim 1 (what `values()` is), so a key's embeddings
reach the interaction through view steps only, as a plain `nn.Embedding`'s do (the feed planner
follows them; TorchRec's own DLRM reads its EBC through `to_dict()`). The merged KeyedTensor stays
where anything else reads it. Models without EBCs are untouched.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import torch
import torch.fx as fx

from dmt_compile.ir.graph import call_module, tag
from dmt_compile.ir.meta import ID_ATOMS
from dmt_compile.ir.module_paths import collection_piece
from dmt_compile.ir.torchrec_ops import jt_merge, kjt_split, kt_get, kt_merge, sub_collection
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
        if pooled:
            owner = {k: parts[i] for i, cfg in enumerate(configs) for k in cfg.feature_names}
            self._read_keys_from_tables(graph, merged, owner, keys, base)

    def _read_keys_from_tables(self, graph: fx.Graph, merged: fx.Node, owner: dict, keys: list, base: str) -> None:
        """Reads of the merged KeyedTensor by key, straight from the key's table (module docstring)."""
        def get(key: str, before: fx.Node) -> fx.Node:
            name = base + "_" + re.sub(r"\W", "_", key)
            with graph.inserting_before(before):
                return tag(graph.call_function(kt_get, (owner[key], key), name=name), self.name)

        def by_key(node: fx.Node) -> bool:
            return node.op == "call_function" and node.target is operator.getitem and len(node.args) == 2 \
                and isinstance(node.args[1], str) and node.args[1] in owner

        for user in list(merged.users):
            if user.op == "call_method" and user.target == "to_dict" and len(user.args) == 1 and not user.kwargs:
                readers = list(user.users)
                if readers and all(by_key(r) for r in readers):
                    for r in readers:
                        r.replace_all_uses_with(get(r.args[1], r))
                        graph.erase_node(r)
                    graph.erase_node(user)
            elif by_key(user):
                user.replace_all_uses_with(get(user.args[1], user))
                graph.erase_node(user)
            elif user.op == "call_method" and user.target == "values" and len(user.args) == 1 and not user.kwargs:
                pieces = [get(k, user) for k in keys]
                with graph.inserting_before(user):
                    cat = tag(graph.call_function(torch.cat, (pieces,), {"dim": 1}, name=f"{base}_values"), self.name)
                user.replace_all_uses_with(cat)
                graph.erase_node(user)
        if not merged.users:
            graph.erase_node(merged)

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        left = [n.name for n in _collection_calls(gm)]
        if left:
            raise AssertionError(f"collection calls {left} still look up several tables in one call")
