"""Graph-level helpers for torchrec collections (optional dependency, imported lazily).

`kjt_split(kjt, groups)` selects one KeyedJaggedTensor per group of keys; `kt_merge(kts, keys)`
rebuilds one KeyedTensor with the original key order. Both are exact (values are copied, not
recomputed), so splitting an EmbeddingBagCollection per table keeps the model's function.
`kt_get(kt, key)` is one key's pooled embeddings `[B, D]` (`kt[key]`): split-collections reads a
key straight from its table's lookup with it, instead of through the merged KeyedTensor.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.fx as fx

__all__ = ["kjt_split", "kt_merge", "kt_get", "jt_merge", "sub_collection"]


@fx.wrap
def kjt_split(kjt: Any, groups: Sequence[Sequence[str]]) -> list:
    """One KeyedJaggedTensor per group of keys (keys in the group's order)."""
    keys = kjt.keys()
    order = [keys.index(k) for group in groups for k in group]
    permuted = kjt.permute(order)
    return list(permuted.split([len(g) for g in groups]))


@fx.wrap
def kt_merge(kts: Sequence[Any], keys: Sequence[str]) -> Any:
    """One KeyedTensor holding every key of `kts`, in the order `keys`."""
    from torchrec.sparse.jagged_tensor import KeyedTensor

    tensors = {}
    for kt in kts:
        tensors.update(kt.to_dict())
    return KeyedTensor.from_tensor_list(list(keys), [tensors[k] for k in keys])


@fx.wrap
def kt_get(kt: Any, key: str) -> torch.Tensor:
    """The pooled embeddings of `key` in the KeyedTensor `kt` (`kt[key]`, no copy)."""
    return kt[key]


@fx.wrap
def jt_merge(parts: Sequence[dict], keys: Sequence[str]) -> dict:
    """One {feature: JaggedTensor} dict in the order `keys` (EmbeddingCollection outputs)."""
    merged: dict = {}
    for part in parts:
        merged.update(part)
    return {k: merged[k] for k in keys}


def sub_collection(collection: torch.nn.Module, table_names: Sequence[str]) -> torch.nn.Module:
    """An Embedding(Bag)Collection over some of the tables, sharing their modules (no copy)."""
    from torchrec.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection

    if type(collection).__name__ == "EmbeddingCollection":
        configs = [c for c in collection.embedding_configs() if c.name in table_names]
        sub = EmbeddingCollection(tables=configs, device=torch.device("meta"),
                                  need_indices=collection.need_indices())
        for cfg in configs:
            sub.embeddings[cfg.name] = collection.embeddings[cfg.name]
        return sub
    configs = [c for c in collection.embedding_bag_configs() if c.name in table_names]
    sub = EmbeddingBagCollection(tables=configs, is_weighted=collection.is_weighted(), device=torch.device("meta"))
    for cfg in configs:
        sub.embedding_bags[cfg.name] = collection.embedding_bags[cfg.name]
    return sub
