"""Which graph nodes are embedding lookups, and which of their arguments are ids.

One rule per lookup style; each returns a `LookupKind` describing the table(s) and id args.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

__all__ = ["LookupKind", "classify_lookup"]


@dataclass(frozen=True)
class LookupKind:
    kind: str
    tables: tuple[str, ...]
    id_args: tuple[Any, ...]  # int positions in node.args, str names in node.kwargs
    rows: int
    dim: int

    def id_nodes(self, node: fx.Node) -> list[fx.Node]:
        out = []
        for key in self.id_args:
            value = node.args[key] if isinstance(key, int) else node.kwargs.get(key)
            if isinstance(value, fx.Node):
                out.append(value)
        return out


def _present(node: fx.Node, names: list[str]) -> tuple[Any, ...]:
    """Positions/keywords of the given parameter names that the call actually passes as nodes."""
    out: list[Any] = []
    for pos, name in enumerate(names):
        if pos < len(node.args) and isinstance(node.args[pos], fx.Node):
            out.append(pos)
        elif isinstance(node.kwargs.get(name), fx.Node):
            out.append(name)
    return tuple(out)


def classify_lookup(gm: fx.GraphModule, node: fx.Node) -> LookupKind | None:
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if isinstance(mod, torch.nn.EmbeddingBag):
            ids = _present(node, ["input", "offsets", "per_sample_weights"])
            return LookupKind("embedding_bag", (f"{node.target}.weight",), ids, mod.num_embeddings, mod.embedding_dim)
        if isinstance(mod, torch.nn.Embedding):
            # a table is identified by its parameter, so module and functional uses of one table match
            return LookupKind("embedding", (f"{node.target}.weight",), _present(node, ["input"]), mod.num_embeddings,
                              mod.embedding_dim)
        if type(mod).__name__ == "EmbeddingBagCollection":
            configs = mod.embedding_bag_configs()
            tables = tuple(f"{node.target}.embedding_bags.{cfg.name}.weight" for cfg in configs)
            rows = sum(cfg.num_embeddings for cfg in configs)
            dim = sum(cfg.embedding_dim for cfg in configs)
            return LookupKind("ebc", tables, _present(node, ["features"]), rows, dim)
        if type(mod).__name__ == "EmbeddingCollection":  # unpooled: a dict of JaggedTensors per feature
            configs = mod.embedding_configs()
            tables = tuple(f"{node.target}.embeddings.{cfg.name}.weight" for cfg in configs)
            rows = sum(cfg.num_embeddings for cfg in configs)
            dim = sum(cfg.embedding_dim * len(cfg.feature_names) for cfg in configs)
            return LookupKind("ec", tables, _present(node, ["features"]), rows, dim)
        return None
    if node.op == "call_function" and node.target in (F.embedding, F.embedding_bag):
        weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        if not isinstance(weight, fx.Node) or weight.op != "get_attr":
            return None
        shape = weight.meta.get("dmt.shape") or (0, 0)
        names = (["input", "weight", "offsets", "max_norm", "norm_type", "scale_grad_by_freq", "mode", "sparse",
                  "per_sample_weights"] if node.target is F.embedding_bag else ["input"])
        ids = tuple(i for i in _present(node, names) if i not in (1, "weight"))
        kind = "functional_embedding_bag" if node.target is F.embedding_bag else "functional_embedding"
        return LookupKind(kind, (weight.target,), ids, int(shape[0]), int(shape[1]))
    return None
