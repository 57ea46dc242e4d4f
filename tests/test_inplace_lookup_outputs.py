"""Lookup outputs that model code modifies in place, under compressed (linear) Tower Modules.

Before: the tower decoder handed back its outputs as `torch.split` pieces; `out += shared_embed` or
`out[:, :k] = shared_embed` on one (pytorch_tabular's SharedEmbeddings) failed in backward-recording
mode: autograd refuses an in-place change of a view made by a function that returns several views.
Expected: each output is a view made alone (`narrow`, `select`): the rewrite trains, identity towers
stay exact.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from fuzz_checks import assert_first_order_descent


class SharedEmbeddings(nn.Module):
    def __init__(self, vocab, add):
        super().__init__()
        self.embed, self.add = nn.Embedding(vocab, 6), add
        self.shared = nn.Parameter(torch.randn(1, 2))

    def forward(self, ids):
        out = self.embed(ids)
        shared = self.shared.expand(out.shape[0], -1)
        if self.add:
            out[:, :2] += shared
        else:
            out[:, :2] = shared
        return out


class Model(nn.Module):
    def __init__(self, add):
        super().__init__()
        self.fields = nn.ModuleList(SharedEmbeddings(v, add) for v in (5, 7, 9))
        self.top = nn.Linear(18, 1)

    def forward(self, x):
        return self.top(torch.cat([f(x[:, i]) for i, f in enumerate(self.fields)], 1))


def _ids(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, v, (batch,), generator=g) for v in (5, 7, 9)], 1)


@pytest.mark.parametrize("add", [True, False], ids=["add_", "setitem"])
def test_in_place_changes_of_lookup_outputs_train_under_linear_towers(add):
    model = Model(add)
    dmt = dmt_compile.transform(model, "2x2", (_ids(8),)).eval()
    x = _ids(5, seed=1)
    with torch.no_grad():
        assert torch.equal(dmt(x), model.eval()(x))
    model.train()
    lin = dmt_compile.transform(model, "2x2", (_ids(8),), tower_module="linear", compression=4).train()
    assert lin.plan.num_towers == 2
    lin(_ids(8)).sum().backward()  # before: RuntimeError (in-place change of a split view)
    assert_first_order_descent(lin, (_ids(8),), {})
