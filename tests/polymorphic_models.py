"""Small models whose interaction is shape-polymorphic in the number of embeddings (direct feed)."""
from __future__ import annotations

import torch
from torch import nn


class FMModel(nn.Module):
    """Factorization machine over [dense embedding; sparse embeddings]: sums over the field axis."""

    def __init__(self, names=("a", "b", "c", "d", "e", "f"), dim=8):
        super().__init__()
        self.names = list(names)
        self.tables = nn.ModuleDict({n: nn.Embedding(50, dim) for n in names})
        self.wide = nn.ModuleDict({n: nn.Embedding(50, 1) for n in names})
        self.dense = nn.Linear(3, dim)
        self.out = nn.Linear(dim, 1)

    def forward(self, dense, sparse):
        embs = [self.dense(dense)] + [self.tables[n](sparse[n]) for n in self.names]
        x = torch.stack(embs, dim=1)  # [B, F+1, D]
        fm = 0.5 * (x.sum(1) ** 2 - (x * x).sum(1))
        wide = torch.cat([self.wide[n](sparse[n]) for n in self.names], dim=1).sum(1, keepdim=True)
        return self.out(fm) + wide


class AttentionPoolModel(nn.Module):
    """Self-attention over field embeddings [B, F, D] (cat of unsqueezed lookups), mean-pooled."""

    def __init__(self, fields=6, dim=8):
        super().__init__()
        self.tables = nn.ModuleList([nn.Embedding(40, dim) for _ in range(fields)])
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.out = nn.Linear(dim, 1)

    def forward(self, x):
        embs = torch.cat([t(x[:, i]).unsqueeze(1) for i, t in enumerate(self.tables)], dim=1)
        h, _ = self.attn(embs, embs, embs)
        return self.out(h.mean(1))


def fm_factory(batch_size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = FMModel()
    dense = torch.randn(batch_size, 3, generator=g)
    sparse = {n: torch.randint(0, 50, (batch_size,), generator=g) for n in model.names}
    return model, (dense, sparse)


def attention_factory(batch_size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = AttentionPoolModel()
    return model, (torch.randint(0, 40, (batch_size, 6), generator=g),)
