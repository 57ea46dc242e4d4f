"""Which graph nodes are embedding lookups, and which of their arguments are ids.

One rule per lookup style (`nn.Embedding`, `nn.EmbeddingBag`, `F.embedding(_bag)`, torchrec
collections); each returns a `LookupKind` describing the table(s), the id arguments and how the
lookup pools. `detect` classifies every node once; later stages read `Detection.lookups`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from dmt_compile.ir.meta import SHAPE

__all__ = ["LookupKind", "classify_lookup", "id_nodes", "COLLECTION_KINDS", "BAG_KINDS"]

COLLECTION_KINDS = ("ebc", "ec")  # torchrec EmbeddingBagCollection / EmbeddingCollection
BAG_KINDS = ("embedding_bag", "functional_embedding_bag")
_BAG_ARGS = ["input", "weight", "offsets", "max_norm", "norm_type", "scale_grad_by_freq", "mode", "sparse",
             "per_sample_weights", "include_last_offset", "padding_idx"]


@dataclass(frozen=True)
class LookupKind:
    kind: str  # embedding | embedding_bag | functional_embedding | functional_embedding_bag | ebc | ec
    tables: tuple[str, ...]  # parameter names of the tables read
    id_args: tuple[Any, ...]  # int positions in node.args, str names in node.kwargs
    rows: int
    dim: int
    mode: str | None = None  # pooling of bag lookups: sum | mean | max
    include_last_offset: bool = False


def id_nodes(node: fx.Node, id_args: tuple[Any, ...]) -> list[fx.Node]:
    """The argument nodes of `node` at the id positions / keywords `id_args`."""
    out = []
    for key in id_args:
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


def _arg(node: fx.Node, pos: int, name: str, default: Any) -> Any:
    if pos < len(node.args):
        return node.args[pos]
    return node.kwargs.get(name, default)


def _module_kind(gm: fx.GraphModule, node: fx.Node) -> LookupKind | None:
    mod = gm.get_submodule(node.target)
    if isinstance(mod, torch.nn.EmbeddingBag):
        ids = _present(node, ["input", "offsets", "per_sample_weights"])
        return LookupKind("embedding_bag", (f"{node.target}.weight",), ids, mod.num_embeddings, mod.embedding_dim,
                          mod.mode, bool(mod.include_last_offset))
    if isinstance(mod, torch.nn.Embedding):
        # a table is identified by its parameter, so module and functional uses of one table match
        return LookupKind("embedding", (f"{node.target}.weight",), _present(node, ["input"]), mod.num_embeddings,
                          mod.embedding_dim)
    if type(mod).__name__ == "EmbeddingBagCollection":
        configs = mod.embedding_bag_configs()
        tables = tuple(f"{node.target}.embedding_bags.{cfg.name}.weight" for cfg in configs)
        return LookupKind("ebc", tables, _present(node, ["features"]), sum(c.num_embeddings for c in configs),
                          sum(c.embedding_dim for c in configs))
    if type(mod).__name__ == "EmbeddingCollection":  # unpooled: a dict of JaggedTensors per feature
        configs = mod.embedding_configs()
        tables = tuple(f"{node.target}.embeddings.{cfg.name}.weight" for cfg in configs)
        return LookupKind("ec", tables, _present(node, ["features"]), sum(c.num_embeddings for c in configs),
                          sum(c.embedding_dim * len(c.feature_names) for c in configs))
    return None


def classify_lookup(gm: fx.GraphModule, node: fx.Node) -> LookupKind | None:
    """The lookup `node` performs, or None when it is not an embedding lookup on a model table."""
    if node.op == "call_module":
        return _module_kind(gm, node)
    if node.op != "call_function" or node.target not in (F.embedding, F.embedding_bag):
        return None
    weight = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
    if not isinstance(weight, fx.Node) or weight.op != "get_attr":
        return None
    rows, dim = (weight.meta.get(SHAPE) or (0, 0))[:2]
    if node.target is F.embedding:
        return LookupKind("functional_embedding", (weight.target,), _present(node, ["input"]), int(rows), int(dim))
    ids = tuple(i for i in _present(node, _BAG_ARGS) if i in (0, 2, 8, "input", "offsets", "per_sample_weights"))
    return LookupKind("functional_embedding_bag", (weight.target,), ids, int(rows), int(dim),
                      _arg(node, 6, "mode", "mean"), bool(_arg(node, 9, "include_last_offset", False)))
