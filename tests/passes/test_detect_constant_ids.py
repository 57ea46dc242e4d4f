"""detect: lookups whose ids follow no sample: constant ids (a whole table embedded, then indexed by the
inputs) and ids with no batch dimension (one list of candidates for every sample).

Before: `E(torch.arange(n))[x]` (the item tower of sequential recommenders scoring a whole catalogue)
was refused as "the model has no embedding lookup", which names the wrong construct: the model has
lookups, of constant ids, whose output the inputs index.
Expected: a typed `DetectionError` that names the constant-id lookups and the fix (look the inputs'
ids up directly); a model with no lookup at all keeps the "no embedding lookup" message.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.errors import DetectionError
from dmt_compile.topo import Topology


class WholeCatalogue(nn.Module):
    def __init__(self, items: int = 20, dim: int = 4):
        super().__init__()
        self.items = nn.Embedding(items, dim)
        self.out = nn.Linear(dim, 1)

    def forward(self, x):
        table = self.items(torch.arange(self.items.num_embeddings, device=x.device))  # every row, constant ids
        return self.out(table[x].mean(1))


class NoLookup(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(x.float())


def test_lookups_of_constant_ids_only_are_named():
    x = torch.randint(0, 20, (8, 3))
    with pytest.raises(DetectionError, match=r"(?s)constant ids \(items\).*E\(ids\) instead of E\(torch.arange\(n\)\)\[ids\]"):
        dmt_compile.transform(WholeCatalogue(), Topology(2, 1), (x,), tower_module="identity")


def test_a_model_without_lookups_keeps_its_message():
    x = torch.randint(0, 20, (8, 3))
    with pytest.raises(DetectionError, match="has no embedding lookup"):
        dmt_compile.transform(NoLookup(), Topology(2, 1), (x,), tower_module="identity")


class SharedCandidates(nn.Module):
    """One `[K]` vector of candidate ids scored against every sample (no batch dimension)."""

    def __init__(self):
        super().__init__()
        self.users = nn.Embedding(20, 4)
        self.items = nn.Embedding(30, 4)

    def forward(self, user, candidates):
        return self.users(user) @ self.items(candidates).t()  # [B, K]


def test_ids_without_a_batch_dimension_are_named():
    user, candidates = torch.randint(0, 20, (8,)), torch.randint(0, 30, (5,))
    with pytest.raises(DetectionError, match=r"(?s)candidates.*no batch dimension.*same ids serve every sample"):
        dmt_compile.transform(SharedCandidates(), Topology(2, 1), (user, candidates), tower_module="identity")
