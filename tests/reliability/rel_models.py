"""Model factories (MODEL_SPECs) for the reliability tests: `tests/reliability/rel_models.py:NAME`."""
from __future__ import annotations

import torch
from torch import nn


class SparseGradDLRM(nn.Module):
    """Two tables with ``sparse=True`` (sparse gradients), a bottom MLP, a dot interaction."""

    def __init__(self, rows=(40, 30), dim: int = 8):
        super().__init__()
        self.a = nn.Embedding(rows[0], dim, sparse=True)
        self.b = nn.Embedding(rows[1], dim, sparse=True)
        self.bottom = nn.Linear(5, dim)
        self.top = nn.Linear(3 * dim + 3, 1)

    def forward(self, dense, ids):
        x = self.bottom(dense)
        ea, eb = self.a(ids[:, 0]), self.b(ids[:, 1])
        stack = torch.stack([x, ea, eb], dim=1)
        inter = torch.bmm(stack, stack.transpose(1, 2))[:, [0, 0, 1], [1, 2, 2]]
        return self.top(torch.cat([x, ea, eb, inter], dim=1))


def sparse_grads(batch_size: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    model = SparseGradDLRM()
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.stack([torch.randint(0, 40, (batch_size,), generator=g), torch.randint(0, 30, (batch_size,), generator=g)], 1)
    return model, (torch.rand(batch_size, 5, generator=g), ids)


def broken_factory(batch_size: int = 8):
    """A factory that fails on every rank (a missing data file)."""
    with open("/nonexistent/criteo_day_0.tsv") as fh:
        fh.read()
