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

import torch.fx as fx

from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.ir.graph import call_module, tag
from dmt_compile.ir.torchrec_ops import jt_merge, kjt_split, kt_merge, sub_collection

__all__ = ["SplitCollections"]


class SplitCollections(Pass):
    name = "split-collections"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        names = ("EmbeddingBagCollection", "EmbeddingCollection")
        targets = [
            n for n in gm.graph.nodes
            if n.op == "call_module" and type(gm.get_submodule(n.target)).__name__ in names
        ]
        for node in targets:
            ebc = gm.get_submodule(node.target)
            pooled = type(ebc).__name__ == "EmbeddingBagCollection"
            configs = ebc.embedding_bag_configs() if pooled else ebc.embedding_configs()
            if len(configs) < 2:
                continue
            kjt = node.args[0] if node.args else node.kwargs["features"]
            groups = [list(c.feature_names) for c in configs]
            keys = [f"{f}" for c in configs for f in c.feature_names]
            base = re.sub(r"\W", "_", node.target)
            graph = gm.graph
            with graph.inserting_before(node):
                split = tag(graph.call_function(kjt_split, (kjt, groups), name=f"{base}_split"), self.name)
                parts = []
                for i, cfg in enumerate(configs):
                    item = graph.call_function(operator.getitem, (split, i), name=f"{base}_kjt_{cfg.name}")
                    item.meta["dmt.id_atoms"] = frozenset((kjt.target if kjt.op == "placeholder" else kjt.name, k)
                                                          for k in cfg.feature_names)
                    tag(item, self.name)
                    path = f"dmt.{base}_{cfg.name}"
                    gm.add_submodule(path, sub_collection(ebc, [cfg.name]))
                    parts.append(tag(call_module(graph, path, (item,), f"{base}_{cfg.name}"), self.name))
                merge = kt_merge if pooled else jt_merge
                merged = tag(graph.call_function(merge, (parts, keys), name=f"{base}_merged"), self.name)
            node.replace_all_uses_with(merged)
            graph.erase_node(node)
        return PassResult(gm, bool(targets))
