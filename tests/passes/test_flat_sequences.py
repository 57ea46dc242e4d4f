"""batch-major-lookups alone: a flattened [B*L] sequence feature, or a [B, F] id matrix flattened before
its lookup, becomes a per-sample [B, L] lookup, exactly."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dmt_compile.passes.flat_sequences import BatchMajorLookups
from passes.harness import prepare, run_alone


class FlatSequence(nn.Module):
    """Before: seq is [B*L] ids, looked up to [B*L, D], viewed to [B, L, D], mask-mean pooled."""

    def __init__(self, length=3, dim=4):
        super().__init__()
        self.length, self.dim = length, dim
        self.user = nn.Embedding(10, dim)
        self.seq = nn.Embedding(20, dim, padding_idx=0)
        self.top = nn.Linear(2 * dim, 1)

    def forward(self, user, seq):
        b = user.shape[0]
        mask = (seq != 0).view(b, self.length, 1).float()
        pooled = (self.seq(seq).view(b, self.length, self.dim) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.top(torch.cat([self.user(user), pooled], 1))


def _inputs(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 10, (batch,), generator=g), torch.randint(0, 20, (batch * 3,), generator=g)


def test_flat_sequence_lookup_becomes_batch_major_and_stays_exact():
    model = FlatSequence()
    gm, ctx = prepare(model, _inputs(6))
    gm, added, _ = run_alone(BatchMajorLookups(), gm, ctx)
    lookup = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "seq")
    assert lookup.meta["dmt.shape"] == (6, 3, 4)  # Expected: [B, L, D], L ids of a sample together
    assert lookup.args[0].op == "call_method" and lookup.args[0].target == "reshape"
    for batch in (6, 5):  # a second batch of another size: the relation holds for every batch
        x = _inputs(batch, seed=batch)
        assert torch.equal(gm(*x), model(*x))


def test_batch_major_lookups_leave_other_lookups_alone():
    model = FlatSequence()
    gm, ctx = prepare(model, _inputs(6))
    user = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "user")
    gm, _, _ = run_alone(BatchMajorLookups(), gm, ctx)
    assert user.args[0].op == "placeholder"


class FlattenedIdMatrix(nn.Module):
    """Before: one concatenated table; the [B, F] id matrix (plus per-field offsets) is flattened before
    the lookup and the `[B*F, D]` rows are viewed back to `[B, F*D]` (`view(B, -1)`, `view(-1, F*D)`)
    or `[B, F, D]`: the flattened ids were a per-sample matrix all along."""

    def __init__(self, spelling="view_b", fields=4, vocab=5, dim=3):
        super().__init__()
        self.spelling, self.fields, self.dim = spelling, fields, dim
        self.emb = nn.Embedding(fields * vocab, dim)
        self.register_buffer("offsets", torch.arange(fields) * vocab)
        self.top = nn.Linear(fields * dim, 1)

    def forward(self, x):
        ids = x + self.offsets
        flat = ids.flatten() if self.spelling == "flatten" else ids.view(-1)
        rows = self.emb(flat)
        if self.spelling == "view_b":
            e = rows.view(x.size(0), -1)
        elif self.spelling == "view_width":
            e = rows.view(-1, self.fields * self.dim)
        else:
            e = rows.view(x.shape[0], self.fields, self.dim).flatten(1)
        return self.top(e)


def _matrix(batch, seed=0):
    return torch.randint(0, 5, (batch, 4), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spelling", ["view_b", "view_width", "flatten"])
def test_a_flattened_id_matrix_is_read_as_the_matrix_and_stays_exact(spelling):
    model = FlattenedIdMatrix(spelling)
    gm, ctx = prepare(model, (_matrix(6),))
    gm, added, _ = run_alone(BatchMajorLookups(), gm, ctx)
    lookup = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == "emb")
    assert lookup.meta["dmt.shape"] == (6, 4, 3)  # Expected: [B, F, D]
    assert lookup.args[0].target is not None and lookup.args[0].op == "call_function"  # x + offsets, no reshape
    for batch in (6, 5):
        x = _matrix(batch, seed=batch)
        assert torch.equal(gm(x), model(x))


@pytest.mark.parametrize("spelling", ["view_b", "view_width", "flatten"])
def test_a_flattened_id_matrix_splits_into_one_feature_per_column(spelling):
    import dmt_compile

    model = FlattenedIdMatrix(spelling)
    dmt = dmt_compile.transform(model, "2x2", (_matrix(8),))
    assert len(dmt.detection.features) == 4 and dmt.plan.num_towers == 2
    for batch in (8, 5):
        x = _matrix(batch, seed=batch)
        assert torch.equal(dmt(x), model(x))
