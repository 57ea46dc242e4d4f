"""The flat reference model for the quality runs: DLRM with a dot interaction.

`dense [B, n_dense]` -> bottom MLP -> `[B, D]`; one `nn.Embedding(card, D)` per sparse feature;
`torch.stack([dense, *embeddings], 1)` -> pairwise dots (upper triangle) -> concatenated with the
dense vector -> top MLP -> `[B, 1]` logits. Embeddings start small (std `1/sqrt(card)`-ish, as in
DLRM), so what the embeddings hold after training comes from the data.
"""
from __future__ import annotations

from typing import Dict, Sequence

import torch
from torch import nn

from benchmarks.quality.data import CTRData

__all__ = ["FlatCTR", "flat_model_for"]


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FlatCTR(nn.Module):
    """DLRM-style flat model over `(dense, {feature: ids})`."""

    def __init__(self, cardinalities: Dict[str, int], num_dense: int, dim: int = 16,
                 bottom: Sequence[int] = (32,), top: Sequence[int] = (64, 32)):
        super().__init__()
        self.names = list(cardinalities)
        self.embeddings = nn.ModuleDict({n: nn.Embedding(c, dim) for n, c in cardinalities.items()})
        for n, c in cardinalities.items():
            nn.init.uniform_(self.embeddings[n].weight, -(1.0 / c) ** 0.5, (1.0 / c) ** 0.5)
        self.bottom = nn.Sequential(_mlp([num_dense, *bottom, dim]), nn.ReLU())
        n = len(self.names) + 1
        triu = torch.triu_indices(n, n, offset=1)
        self.register_buffer("triu", triu, persistent=False)
        self.top = _mlp([dim + triu.shape[1], *top, 1])

    def forward(self, dense: torch.Tensor, sparse: Dict[str, torch.Tensor]) -> torch.Tensor:
        d = self.bottom(dense)
        embs = [self.embeddings[n](sparse[n]) for n in self.names]
        z = torch.stack([d] + embs, dim=1)
        inter = torch.bmm(z, z.transpose(1, 2))[:, self.triu[0], self.triu[1]]
        return self.top(torch.cat([d, inter], dim=1))


def flat_model_for(data: CTRData, dim: int = 16, seed: int = 0) -> FlatCTR:
    """A `FlatCTR` sized for `data`, initialised from `seed`."""
    torch.manual_seed(seed)
    return FlatCTR(dict(zip(data.feature_names, data.cardinalities)), data.dense.shape[1], dim)
