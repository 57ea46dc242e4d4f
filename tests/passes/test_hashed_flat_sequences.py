"""Flattened sequences with several hashed ids per position are looked up per sample (passes/flat_sequences.py).

A Bloom-style embedding flattens a `[B, L]` id sequence to `B*L` rows, maps each id to H hashed rows
through a constant hash table (`hashes[ids]`, `[B*L, H]`), looks those up (`[B*L, H, D]`), sums the H
embeddings of each row and only then views the result back to `[B, L, D]`.
Before: the lookup's rows were `B*L`, not the batch, and no view of the lookup itself related them to
it: detection refused it ("returns shape (160, 4, 16), which is not batch-major").
Expected: the ids are read as `[B, L*H]` and the lookup viewed back to `[B*L, H, D]`, so the lookup is
an ordinary per-sample sequence lookup; with a user id beside it the model splits into two towers and
the rewrite is exact at batch 32 and 7.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile

USERS, ITEMS, BUCKETS, H, D, L = 20, 40, 12, 4, 8, 5


class HashedSequence(nn.Module):
    """Each item id hashed to H rows of a small table; the H embeddings of a position summed."""

    def __init__(self, reduce: str):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.hashes = torch.randint(0, BUCKETS, (ITEMS, H), generator=g)  # a plain attribute, as in Bloom layers
        self.buckets = nn.Embedding(BUCKETS, D)
        self.users = nn.Embedding(USERS, D)
        self.reduce = reduce
        self.out = nn.Linear(2 * D, 1)

    def embed(self, items):
        batch, length = items.size()
        flat = items.contiguous().view(batch * length, 1).squeeze()
        rows = self.buckets(torch.index_select(self.hashes, 0, flat))  # [B*L, H, D]
        rows = rows.sum(1) if self.reduce == "sum" else rows.mean(dim=1)
        return rows.view(batch, length, -1)

    def forward(self, user, items):
        pooled = self.embed(items).mean(dim=1)
        return self.out(torch.cat([self.users(user), pooled], dim=1))


def _inputs(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, USERS, (batch,), generator=g), torch.randint(0, ITEMS, (batch, L), generator=g)


@pytest.mark.parametrize("reduce", ["sum", "mean"])
def test_hashed_flat_sequence_is_looked_up_per_sample(reduce):
    torch.manual_seed(0)
    model = HashedSequence(reduce).eval()
    dmt = dmt_compile.transform(model, "2x2", _inputs(32, 0))
    assert dmt.plan.num_towers == 2
    shapes = {lk.node: lk.out_shape for lk in dmt.detection.lookups}
    assert any(s == (32, L * H, D) for s in shapes.values()), shapes
    dmt.eval()
    for batch, seed in ((32, 0), (7, 1)):
        x = _inputs(batch, seed)
        with torch.no_grad():
            assert torch.equal(dmt(*x), model(*x))
