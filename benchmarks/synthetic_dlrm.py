"""A synthetic DLRM with many sparse features, for the compiler benchmarks."""
from __future__ import annotations

import torch
from torch import nn


class WideDLRM(nn.Module):
    """Bottom MLP, one nn.Embedding per feature (dict input), dot interaction, top MLP."""

    def __init__(self, num_features: int, dim: int = 16, rows: int = 100):
        super().__init__()
        self.names = [f"f{i}" for i in range(num_features)]
        self.tables = nn.ModuleDict({n: nn.Embedding(rows, dim) for n in self.names})
        self.bottom = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Linear(64, dim), nn.ReLU())
        self.top = nn.Sequential(nn.Linear(dim + (num_features + 1) * num_features // 2, 64), nn.ReLU(),
                                 nn.Linear(64, 1))
        f = num_features + 1
        rows_i, cols_i = torch.triu_indices(f, f, offset=1)
        self.register_buffer("rows_i", rows_i, persistent=False)
        self.register_buffer("cols_i", cols_i, persistent=False)

    def forward(self, dense, sparse):
        x = self.bottom(dense)
        embs = torch.stack([x] + [self.tables[n](sparse[n]) for n in self.names], dim=1)
        inter = torch.bmm(embs, embs.transpose(1, 2))[:, self.rows_i, self.cols_i]
        return self.top(torch.cat([x, inter], dim=1))


def factory(num_features: int = 26, batch_size: int = 64, seed: int = 0, dim: int = 16):
    torch.manual_seed(seed)
    model = WideDLRM(num_features, dim)
    g = torch.Generator().manual_seed(seed)
    dense = torch.randn(batch_size, 13, generator=g)
    sparse = {n: torch.randint(0, 100, (batch_size,), generator=g) for n in model.names}
    return model, (dense, sparse)
