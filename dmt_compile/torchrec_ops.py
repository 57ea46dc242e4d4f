"""Graph-level helpers for torchrec collections (optional dependency, imported lazily).

`kjt_split(kjt, groups)` selects one KeyedJaggedTensor per group of keys; `kt_merge(kts, keys)`
rebuilds one KeyedTensor with the original key order. Both are exact (values are copied, not
recomputed), so splitting an EmbeddingBagCollection per table keeps the model's function.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.fx as fx

__all__ = ["kjt_split", "kt_merge", "sub_collection"]


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


def sub_collection(ebc: torch.nn.Module, table_names: Sequence[str]) -> torch.nn.Module:
    """An EmbeddingBagCollection over some of `ebc`'s tables, sharing their modules (no copy)."""
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    configs = [c for c in ebc.embedding_bag_configs() if c.name in table_names]
    sub = EmbeddingBagCollection(tables=configs, is_weighted=ebc.is_weighted(), device=torch.device("meta"))
    for cfg in configs:
        sub.embedding_bags[cfg.name] = ebc.embedding_bags[cfg.name]
    return sub
