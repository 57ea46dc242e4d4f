"""Python that follows the batch size inside a submodule without embeddings becomes a leaf.

Before: ghost batch norm (pytorch-tabnet's `GBN`: `x.chunk(int(np.ceil(x.shape[0] / vbs)), 0)`, each
piece through one BatchNorm) was traced with the example's number of pieces and guarded, so a batch that
splits into another number of pieces was refused (`SpecializationError` at batch 7 for 4 pieces at 32).
Expected: such a submodule is called as it is (a leaf of the graph, listed in the capture report), and
the rewrite is exact at every batch size; the same Python in a module that holds tables stays guarded.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.errors import SpecializationError


class GhostBatchNorm(nn.Module):
    def __init__(self, width: int, virtual_batch: int = 4):
        super().__init__()
        self.virtual_batch, self.bn = virtual_batch, nn.BatchNorm1d(width)

    def forward(self, x):
        chunks = x.chunk(int(np.ceil(x.shape[0] / self.virtual_batch)), 0)
        return torch.cat([self.bn(c) for c in chunks], dim=0)


class Model(nn.Module):
    def __init__(self, ghost_in_root: bool = False):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)
        self.ghost_in_root = ghost_in_root
        self.ghost = GhostBatchNorm(8)
        self.top = nn.Linear(8, 1)

    def forward(self, x):
        e = torch.cat([self.a(x[:, 0]), self.b(x[:, 1])], 1)
        if self.ghost_in_root:  # the same split in the module that holds the tables
            e = torch.cat([self.ghost.bn(c) for c in e.chunk(int(np.ceil(e.shape[0] / 4)), 0)], 0)
        else:
            e = self.ghost(e)
        return self.top(e)


def _ids(batch, seed=0):
    return torch.randint(0, 10, (batch, 2), generator=torch.Generator().manual_seed(seed))


def test_ghost_batch_norm_is_a_leaf_and_runs_at_every_batch_size():
    torch.manual_seed(0)
    model = Model().eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(8),))
    assert dmt.capture_report.path == "specialize+leaf" and dmt.capture_report.auto_leaves == ("ghost",)
    assert not dmt.capture_report.guards
    dmt.eval()
    for batch in (8, 3, 13):  # 2, 1 and 4 virtual batches
        x = _ids(batch, seed=batch)
        with torch.no_grad():
            assert torch.equal(dmt(x), model(x))


def test_the_same_split_in_the_module_with_the_tables_stays_guarded():
    torch.manual_seed(0)
    model = Model(ghost_in_root=True).eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(8),))
    assert dmt.capture_report.path == "specialize" and dmt.capture_report.guards
    with pytest.raises(SpecializationError, match="batch size"):
        dmt.eval()(_ids(3))
