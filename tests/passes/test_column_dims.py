"""Column picks in other spellings (ir/column_dims.py): each field of a `[B, F]` id matrix its own atom.

Before: `x.t()[i]`, iterating `x.T`, `x.permute(1, 0).unbind(0)`, `x.narrow(1, i, 1)`,
`torch.chunk(x, F, 1)[i]`, `x.unbind(-1)[i]` and `torch.stack([a, b, ...], 1)[:, i]` read as the whole
input (of the stack: every input stacked): every lookup in one feature
group, one tower. Expected: one group per field, two towers, exact; a pick along the batch dim, or a
reduction over the transposed columns, still reads the whole input.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile

F, V, D = 4, 10, 4

SPELLINGS = {
    "t_index": lambda x, i: x.t()[i],
    "T_iter": lambda x, i: list(x.T)[i],
    "transpose_select": lambda x, i: x.transpose(0, 1).select(0, i),
    "permute_unbind": lambda x, i: x.permute(1, 0).unbind(0)[i],
    "narrow": lambda x, i: x.narrow(1, i, 1).squeeze(1),
    "narrow_negative_dim": lambda x, i: x.narrow(-1, i, 1).squeeze(-1),
    "chunk": lambda x, i: torch.chunk(x, F, dim=1)[i].squeeze(1),
    "split_sizes": lambda x, i: torch.split(x, [1] * F, dim=1)[i].squeeze(1),
    "unbind_last": lambda x, i: x.unbind(-1)[i],
    "long_of_T": lambda x, i: x.float().T.long()[i],
}


class Picks(nn.Module):
    def __init__(self, pick):
        super().__init__()
        self.pick = pick
        self.tables = nn.ModuleList(nn.Embedding(V, D) for _ in range(F))
        self.top = nn.Linear(F * D, 1)

    def forward(self, x):
        return self.top(torch.cat([t(self.pick(x, i)) for i, t in enumerate(self.tables)], 1))


def _ids(batch, seed):
    return torch.randint(0, V, (batch, F), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_each_spelling_gives_a_group_per_field(spelling):
    model = Picks(SPELLINGS[spelling]).eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(16, 0),))
    assert len(dmt.detection.groups) == F and dmt.plan.num_towers == 2, dmt.plan
    x = _ids(5, 1)
    torch.testing.assert_close(dmt(x), model(x), rtol=0, atol=0)


class NotPicks(nn.Module):
    """Ids that really mix columns: a pick along the batch dim of the transpose, and a sum of columns."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(V * F, D), nn.Embedding(V, D)
        self.top = nn.Linear(2 * D, 1)

    def forward(self, x):
        mixed = x.T.sum(0)  # every column
        first_row_col = x.narrow(0, 0, 1).expand(x.shape[0], F)[:, 0]  # rows, not columns, narrowed
        return self.top(torch.cat([self.a(mixed), self.b(first_row_col % V)], 1))


def test_mixing_columns_is_still_the_whole_input():
    model = NotPicks().eval()
    dmt = dmt_compile.transform(model, "1x2", (_ids(8, 0),))
    assert len(dmt.detection.groups) == 1, [str(g) for g in dmt.detection.groups]
    x = _ids(5, 2)
    torch.testing.assert_close(dmt(x), model(x), rtol=0, atol=0)


class Stacked(nn.Module):
    """Fields as separate `[B]` inputs, stacked into one matrix, then picked by column."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(V, D) for _ in range(F))
        self.top = nn.Linear(F * D, 1)

    def forward(self, a, b, c, d):
        x = torch.stack([a, b, c, d], dim=1)
        return self.top(torch.cat([t(x[:, i]) for i, t in enumerate(self.tables)], 1))


def test_columns_of_a_stack_of_inputs_are_those_inputs():
    model = Stacked().eval()
    dmt = dmt_compile.transform(model, "2x2", tuple(_ids(16, 0).unbind(1)))
    assert len(dmt.detection.groups) == F and dmt.plan.num_towers == 2, dmt.plan
    x = tuple(_ids(5, 3).unbind(1))
    torch.testing.assert_close(dmt(*x), model(*x), rtol=0, atol=0)
