"""Column picks in other spellings (ir/column_dims.py): each field of a `[B, F]` id matrix its own atom.

Before: `x.t()[i]`, iterating `x.T`, `x.permute(1, 0).unbind(0)`, `x.narrow(1, i, 1)`,
`torch.chunk(x, F, 1)[i]`, `x.unbind(-1)[i]` and `torch.stack([a, b, ...], 1)[:, i]`, and picks of the
matrix with singleton dims inserted (`x.unsqueeze(-1)[:, i]`, `x[:, :, None]`, `x.view(B, -1, 1)`)
read as the whole input (of the stack: every input stacked): every lookup in one feature
group, one tower. Expected: one group per field, two towers, exact; a pick along the batch dim, or a
reduction over the transposed columns, still reads the whole input.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from helpers import FieldPicks

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
    # singleton dims inserted or dropped around the matrix (ir/column_layout.py)
    "unsqueeze_last": lambda x, i: x.unsqueeze(-1)[:, i].squeeze(1),
    "unsqueeze_last_at_0": lambda x, i: x.unsqueeze(-1)[:, i, 0],
    "none_index": lambda x, i: x[:, :, None][:, i].squeeze(-1),
    "unsqueeze_1": lambda x, i: x.unsqueeze(1)[:, 0, i],
    "view_b_f_1": lambda x, i: x.view(x.size(0), -1, 1)[:, i, 0],
    "reshape_select": lambda x, i: x.reshape(-1, F, 1).select(1, i).select(-1, 0),
    "unsqueeze_unbind": lambda x, i: x.unsqueeze(-1).unbind(1)[i][:, 0],
    "unsqueeze_transposed": lambda x, i: x.unsqueeze(-1).transpose(0, 1)[i].squeeze(-1),
    "squeezed_back": lambda x, i: x.unsqueeze(1).squeeze(1).t()[i],
}


def _ids(batch, seed):
    return torch.randint(0, V, (batch, F), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_each_spelling_gives_a_group_per_field(spelling):
    model = FieldPicks(SPELLINGS[spelling], F, V, D).eval()
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
        pairs = x.view(x.size(0), 2, 2)[:, 0].sum(1)  # not a singleton insertion: columns 0 and 1 mixed
        rows = x.unsqueeze(-1)[0].expand(F, x.shape[0]).T[:, 0]  # the batch dim indexed: one sample's ids
        return self.top(torch.cat([self.a(mixed), self.b(first_row_col % V) + self.b(pairs % V)
                                   + self.b(rows)], 1))


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


def test_column_layout_alone_on_a_small_graph():
    """Before/Expected on the graph: where the batch and the columns sit after each layout op."""
    import torch.fx as fx

    from dmt_compile.ir.column_layout import column_layout
    from dmt_compile.ir.shapes import record_shapes

    def f(x):  # the output's first tensor says the batch size (x is batch-major: ir/batch_dims.py)
        return x.sum(1), x.unsqueeze(-1).transpose(0, 1)[:, :, None].view(F, x.size(0), 1)

    gm = fx.symbolic_trace(f)
    record_shapes(gm, [_ids(6, 0)])
    nodes = {n.name: n for n in gm.graph.nodes}
    x = nodes["x"]
    expected = {"x": ("b", "c"), "unsqueeze": ("b", "c", "1"), "transpose": ("c", "b", "1"),
                "getitem": ("c", "b", "1", "1"), "view": ("c", "b", "1")}
    for name, dims in expected.items():
        layout = column_layout(nodes[name], lambda n: n)
        assert layout is not None and layout.source is x and layout.dims == dims, (name, layout)


def test_the_tail_of_a_sequence_read_by_one_lookup_stays_one_feature():
    """`seq[:, -L:]` (a sequence cut to its last L positions, NextRec's HSTU) is one feature, as the whole
    sequence is; column picks never read a slice of columns as separate fields."""

    class Tail(nn.Module):
        def __init__(self):
            super().__init__()
            self.user, self.item = nn.Embedding(V, D), nn.Embedding(V, D)
            self.top = nn.Linear(2 * D, 1)

        def forward(self, user, seq):
            return self.top(torch.cat([self.user(user), self.item(seq[:, -3:]).mean(1)], 1))

    g = torch.Generator().manual_seed(0)
    inputs = (torch.randint(0, V, (16,), generator=g), torch.randint(0, V, (16, 5), generator=g))
    dmt = dmt_compile.transform(Tail().eval(), "2x2", inputs)
    assert sorted(dmt.detection.features) == ["seq", "user"], dmt.detection.features
