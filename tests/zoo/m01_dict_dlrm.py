"""DLRM over a dict of per-feature ``nn.Embedding`` tables.

Lookup style: (a) ``nn.ModuleDict`` of ``nn.Embedding`` keyed by feature name, input
``{name: LongTensor[B]}``.
Idiom (not fx-traceable): the batch size is read off the dict with
``X[list(X.keys())[0]].shape[0]`` (iterating a Proxy).
Interaction: DLRM dot product (``bmm`` + ``triu_indices``). Output: ``[B, 1]`` logits.
Inputs: ``(dense: FloatTensor[B, 13], sparse: dict[str, LongTensor[B]])``.
"""
from typing import Dict, List

import torch
from torch import nn

from ._data import dense, gen, ids, seeded

CARDINALITIES = {"C1": 120, "C2": 64, "C3": 800, "C4": 50, "C5": 300, "C6": 75, "C7": 999, "C8": 210}


def mlp(sizes: List[int], last_act: bool = True) -> nn.Sequential:
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DotInteraction(nn.Module):
    def __init__(self, num_vectors: int, self_interaction: bool = False):
        super().__init__()
        offset = 0 if self_interaction else -1
        li, lj = torch.tril_indices(num_vectors, num_vectors, offset=offset)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)

    def forward(self, dense_x: torch.Tensor, emb: List[torch.Tensor]) -> torch.Tensor:
        T = torch.stack([dense_x] + emb, dim=1)  # [B, 1+F, D]
        Z = torch.bmm(T, T.transpose(1, 2))
        Zflat = Z[:, self.li, self.lj]
        return torch.cat([dense_x, Zflat], dim=1)


class DLRMNet(nn.Module):
    def __init__(self, cardinalities: Dict[str, int], embedding_dim: int = 16, num_dense: int = 13):
        super().__init__()
        self.features = list(cardinalities)
        self.emb_l = nn.ModuleDict({k: nn.Embedding(n, embedding_dim) for k, n in cardinalities.items()})
        self.bot_l = mlp([num_dense, 32, embedding_dim])
        n = len(cardinalities) + 1
        self.interact = DotInteraction(n)
        self.top_l = mlp([embedding_dim + n * (n - 1) // 2, 32, 16, 1], last_act=False)

    def forward(self, dense_x: torch.Tensor, X: Dict[str, torch.Tensor]) -> torch.Tensor:
        batch_size = X[list(X.keys())[0]].shape[0]
        x = self.bot_l(dense_x.view(batch_size, -1))
        ly = [self.emb_l[k](X[k]) for k in self.features]
        return self.top_l(self.interact(x, ly))


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = DLRMNet(CARDINALITIES)
    g = gen(seed)
    sparse = {k: ids(g, n, batch_size) for k, n in CARDINALITIES.items()}
    return model, (dense(g, batch_size, 13), sparse)
