"""Embedding tables kept in a plain dict (not an `nn.ModuleDict`).

Before: `self.tables = {"0": nn.Embedding(...), ...}` left the tables out of `named_modules()`; the
automatic-leaf fallback made the module that calls them a leaf (it saw no embedding inside), and
`transform` refused with "the model has no embedding lookup".
Expected: the tables are registered on the working copy (the user's model is left alone), captured
as lookups, and the rewrite has one tower per feature group and equals the model exactly.
"""
from __future__ import annotations

import torch
from torch import nn

import dmt_compile
from dmt_compile.capture.unregistered import adopt_unregistered_modules


class PlainDictTables(nn.Module):
    def __init__(self, vocab=(7, 9, 11, 5), dim=4):
        super().__init__()
        self.tables = {str(i): nn.Embedding(n, dim) for i, n in enumerate(vocab)}  # not registered
        self.pair = [nn.Linear(dim, dim)]  # a plain list, too
        self.top = nn.Linear(dim * len(vocab), 1)

    def forward(self, ids):
        if ids.ndim != 2:  # leaves the symbolic path, so the automatic-leaf fallback is reached
            raise ValueError("ids must be [B, F]")
        embs = [self.pair[0](self.tables[str(i)](ids[:, i])) for i in range(ids.shape[1])]
        return torch.sigmoid(self.top(torch.cat(embs, dim=1)))


def _ids(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (batch,), generator=g) for n in (7, 9, 11, 5)], dim=1)


def test_modules_in_plain_containers_are_registered_under_their_holder():
    model = PlainDictTables()
    adopted = adopt_unregistered_modules(model)
    assert adopted == ["_dmt_tables_0", "_dmt_tables_1", "_dmt_tables_2", "_dmt_tables_3", "_dmt_pair_0"]
    assert model._dmt_tables_2 is model.tables["2"]
    assert adopt_unregistered_modules(model) == []  # idempotent


def test_tables_in_a_plain_dict_are_found_and_the_rewrite_is_exact():
    model = PlainDictTables().eval()
    before = len(list(model.parameters()))
    dmt = dmt_compile.transform(model, "2x2", (_ids(16),)).eval()
    assert len(list(model.parameters())) == before  # transform registered them on its copy only
    assert len(dmt.detection.features) == 4 and dmt.plan.num_towers == 2
    x = _ids(7, seed=1)
    with torch.no_grad():
        assert torch.equal(dmt(x), model(x))
