"""Hand-written DeepFM on a torchrec ``EmbeddingBagCollection`` (REQUIRES torchrec).

Lookup style: (e) one EBC with mixed pooling (``PoolingType.SUM`` for ids, ``MEAN`` for the
multi-hot ``tags`` / ``history`` features), ``KeyedJaggedTensor`` input with 1..3 ids per bag;
the pooled ``KeyedTensor`` is read with ``.to_dict()`` by feature name. A second EBC of
dim-1 tables gives the first-order term over the same KJT (c).
Interaction: FM (square-of-sum minus sum-of-square) + deep MLP over [dense; embeddings].
Output: ``[B, 1]`` logits. Inputs: ``(dense: FloatTensor[B, 5], kjt: KeyedJaggedTensor)``
keys: user, item, tags, history. fx-traceable.
"""
from typing import List

import torch
from torch import nn

from ._data import dense, gen, kjt, seeded

FEATURES = {"user": (700, "SUM"), "item": (900, "SUM"), "tags": (80, "MEAN"), "history": (900, "MEAN")}
D = 8


class FMDeep(nn.Module):
    def __init__(self, ebc, wide_ebc, feature_names: List[str], dense_in: int):
        super().__init__()
        self.ebc = ebc
        self.wide_ebc = wide_ebc
        self.feature_names = feature_names
        self.dense_proj = nn.Linear(dense_in, D)
        self.deep = nn.Sequential(nn.Linear(D * (len(feature_names) + 1), 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, dense_features: torch.Tensor, sparse_features) -> torch.Tensor:
        pooled = self.ebc(sparse_features).to_dict()
        embs = [pooled[f] for f in self.feature_names]
        d = self.dense_proj(dense_features)
        stacked = torch.stack([d] + embs, dim=1)  # [B, F+1, D]
        sum_sq = torch.sum(stacked, dim=1) ** 2
        sq_sum = torch.sum(stacked * stacked, dim=1)
        fm = 0.5 * torch.sum(sum_sq - sq_sum, dim=1, keepdim=True)
        first_order = torch.sum(self.wide_ebc(sparse_features).values(), dim=1, keepdim=True)
        return fm + first_order + self.deep(stacked.flatten(1))


def factory(batch_size: int = 8, seed: int = 0):
    from torchrec.modules.embedding_configs import EmbeddingBagConfig, PoolingType
    from torchrec.modules.embedding_modules import EmbeddingBagCollection

    names = list(FEATURES)
    with seeded(seed):
        def tables(dim, prefix):
            return [EmbeddingBagConfig(name=f"{prefix}_{f}", embedding_dim=dim, num_embeddings=n,
                                       feature_names=[f], pooling=getattr(PoolingType, p))
                    for f, (n, p) in FEATURES.items()]
        ebc = EmbeddingBagCollection(tables=tables(D, "emb"), device=torch.device("cpu"))
        wide = EmbeddingBagCollection(tables=tables(1, "wide"), device=torch.device("cpu"))
        model = FMDeep(ebc, wide, names, dense_in=5)
    g = gen(seed)
    return model, (dense(g, batch_size, 5), kjt(g, names, [n for n, _ in FEATURES.values()], batch_size))
