"""DLRM (Naumov et al., 2019) on Criteo-shaped inputs: 13 dense + 26 categorical features.

One ``nn.Embedding`` per categorical feature in an ``nn.ModuleDict`` keyed by feature name;
sparse ids arrive as a dict ``{name: LongTensor[B]}``. The bottom MLP maps the dense features
to the embedding dimension, the dot interaction takes the pairwise dot products of all
27 vectors (upper triangle via ``triu_indices``), and the top MLP produces ``[B, 1]`` logits.

MODEL_SPEC: ``examples/dlrm.py:factory``.
"""
from typing import Dict, List

import torch
from torch import nn

NUM_DENSE = 13
EMBEDDING_DIM = 16
# Small stand-ins for Criteo's C1..C26 cardinalities.
CARDINALITIES = {
    f"C{i + 1}": n for i, n in enumerate([
        1000, 550, 990, 700, 300, 240, 120, 640, 50, 860, 420, 980, 310,
        75, 600, 900, 64, 512, 128, 50, 1000, 96, 180, 720, 250, 105,
    ])
}


def mlp(sizes: List[int], final_activation: bool) -> nn.Sequential:
    layers: List[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if final_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DotInteraction(nn.Module):
    """Pairwise dot products between the dense vector and every embedding."""

    def __init__(self, num_vectors: int):
        super().__init__()
        triu = torch.triu_indices(num_vectors, num_vectors, offset=1)
        self.register_buffer("triu_indices", triu, persistent=False)

    def forward(self, dense: torch.Tensor, embeddings: List[torch.Tensor]) -> torch.Tensor:
        combined = torch.stack([dense] + embeddings, dim=1)  # [B, 1 + F, D]
        interactions = torch.bmm(combined, combined.transpose(1, 2))  # [B, 1 + F, 1 + F]
        flat = interactions[:, self.triu_indices[0], self.triu_indices[1]]
        return torch.cat([dense, flat], dim=1)


class DLRM(nn.Module):
    def __init__(self, cardinalities: Dict[str, int], num_dense: int = NUM_DENSE,
                 embedding_dim: int = EMBEDDING_DIM, bottom=(64, 32), top=(64, 32)):
        super().__init__()
        self.feature_names = list(cardinalities)
        self.embeddings = nn.ModuleDict(
            {name: nn.Embedding(n, embedding_dim) for name, n in cardinalities.items()}
        )
        self.bottom_mlp = mlp([num_dense, *bottom, embedding_dim], final_activation=True)
        num_vectors = len(cardinalities) + 1
        self.interaction = DotInteraction(num_vectors)
        top_in = embedding_dim + num_vectors * (num_vectors - 1) // 2
        self.top_mlp = mlp([top_in, *top, 1], final_activation=False)

    def forward(self, dense_features: torch.Tensor, sparse_features: Dict[str, torch.Tensor]) -> torch.Tensor:
        dense = self.bottom_mlp(dense_features)
        embedded = [self.embeddings[name](sparse_features[name]) for name in self.feature_names]
        return self.top_mlp(self.interaction(dense, embedded))


def factory(batch_size: int = 8, seed: int = 0):
    """Returns ``(model, (dense_features [B, 13] float, {"C1".."C26": LongTensor[B]}))``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DLRM(CARDINALITIES)
    g = torch.Generator().manual_seed(seed + 1)
    dense = torch.rand(batch_size, NUM_DENSE, generator=g)
    sparse = {name: torch.randint(0, n, (batch_size,), generator=g) for name, n in CARDINALITIES.items()}
    return model, (dense, sparse)
