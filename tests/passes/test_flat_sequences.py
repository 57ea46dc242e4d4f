"""batch-major-lookups alone: a flattened [B*L] sequence feature becomes a per-sample [B, L] lookup, exactly."""
from __future__ import annotations

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
