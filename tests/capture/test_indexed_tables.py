"""Parameter tables read at integer ids are embedding lookups (capture/indexed_tables.py).

Before: a table kept as a plain `nn.Parameter` and read as `W[ids]` or `W.index_select(0, ids)`
(no `nn.Embedding`, no `F.embedding`) was not a lookup: detection said "the model has no embedding
lookup", and a model mixing such tables with `nn.Embedding` kept them data-parallel.
Expected: each such read becomes `F.embedding(ids, W)` in the captured graph (fx and export paths),
the tables are split over towers and the rewrite is exact; a buffer indexed by ids, a boolean mask,
a tuple index and negative ids (where `W[-1]` and `F.embedding` differ) are left as they are.
"""
from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmt_compile
from dmt_compile.capture.capture import capture
from dmt_compile.errors import DetectionError

V, D, FIELDS = 10, 4, 4


class ParamTables(nn.Module):
    """`spelling` picks how field i's table is read: W[ids], index_select or the Tensor method."""

    def __init__(self, spelling: str = "getitem", shift: int = 0):
        super().__init__()
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(V, D)) for _ in range(FIELDS))
        self.spelling, self.shift = spelling, shift
        self.top = nn.Linear(FIELDS * D, 1)

    def read(self, t, ids):
        if self.spelling == "getitem":
            return t[ids]
        if self.spelling == "index_select":
            return torch.index_select(t, 0, ids)
        if self.spelling == "torch_embedding":
            return torch.embedding(t, ids)
        return t.index_select(0, ids)

    def forward(self, x):
        x = x - self.shift
        return self.top(torch.cat([self.read(t, x[:, i]) for i, t in enumerate(self.tables)], 1))


def _ids(batch, seed=0):
    return torch.randint(0, V, (batch, FIELDS), generator=torch.Generator().manual_seed(seed))


def _lookups(gm):
    return [n for n in gm.graph.nodes if n.op == "call_function" and n.target is F.embedding]


@pytest.mark.parametrize("spelling", ["getitem", "index_select", "method", "torch_embedding"])
def test_parameter_tables_read_at_ids_become_lookups_and_split_exactly(spelling):
    model = ParamTables(spelling).eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(16),))
    assert dmt.plan.num_towers == 2 and len(dmt.detection.groups) == FIELDS
    for batch, seed in ((16, 1), (5, 2)):
        x = _ids(batch, seed)
        torch.testing.assert_close(dmt(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("path", ["symbolic", "export"])
def test_both_capture_paths_lift_the_reads(path):
    model = ParamTables("getitem").eval()
    done = capture(model, (_ids(8),), paths=(path,))
    assert len(_lookups(done.gm)) == FIELDS, done.gm.graph
    assert "as embedding lookups" in done.report.note


def test_one_parameter_matrix_read_at_offset_ids_is_split_by_row_ranges():
    class OneMatrix(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(FIELDS * V, D))
            self.register_buffer("offsets", torch.arange(FIELDS) * V)
            self.top = nn.Linear(FIELDS * D, 1)

        def forward(self, x):
            return self.top(self.weight[x + self.offsets].flatten(1))

    model = OneMatrix().eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(16),))
    assert dmt.plan.num_towers == 2
    x = _ids(7, 3)
    torch.testing.assert_close(dmt(x), model(x), rtol=0, atol=0)


class NotTables(nn.Module):
    """Indexing that is not a lookup, next to one real table."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, V))  # a buffer read at ids
        self.rows = nn.Parameter(torch.randn(V, D))  # read by a mask and by a tuple index
        self.top = nn.Linear(D + 2, 1)

    def forward(self, x):
        picked = self.rows[self.rows[:, 0] > 0].sum(0, keepdim=True)  # boolean mask: rows selected
        corner = self.rows[0, 1]  # tuple index: one element
        e = self.emb(x[:, 0]) * self.scale[x[:, 1]].unsqueeze(1)
        extra = torch.stack([e.sum(1) * corner, (e * picked).sum(1)], 1)
        return self.top(torch.cat([e, extra], 1))


def test_buffers_masks_and_tuple_indices_are_not_lifted():
    model = NotTables().eval()
    done = capture(model, (_ids(8),))
    assert [n.args[1].target for n in _lookups(done.gm)] == [], "only nn.Embedding looks up here"
    getitems = [n for n in done.gm.graph.nodes if n.op == "call_function" and n.target is operator.getitem]
    assert len(getitems) >= 3
    dmt = dmt_compile.transform(model, "1x2", (_ids(8),))
    x = _ids(5, 4)
    torch.testing.assert_close(dmt(x), model(x), rtol=0, atol=0)


def test_negative_ids_keep_the_indexing_and_say_why():
    """`W[x - 1]` at id 0 reads the last row; `F.embedding` would raise: the traced graph stays, so the
    model has no lookup, which is the typed refusal it had before."""
    model = ParamTables("getitem", shift=1).eval()
    x = _ids(16)
    x[0, 0] = 0  # one negative id in the example
    done = capture(model, (x,))
    assert _lookups(done.gm) == [] and "kept as indexing" in done.report.note
    with pytest.raises(DetectionError, match="no embedding lookup"):
        dmt_compile.transform(model, "2x2", (x,))


class OneHotProducts(nn.Module):
    """Field i read as a one-hot product: `F.one_hot(ids, V).float() @ W`, `torch.matmul(... .to(W.dtype), W)`,
    `.type_as(W).mm(W)`."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ParameterList(nn.Parameter(torch.randn(V, D)) for _ in range(FIELDS))
        self.top = nn.Linear(FIELDS * D, 1)

    def read(self, i, ids):
        w, oh = self.tables[i], F.one_hot(ids, V)
        if i % 3 == 0:
            return oh.float() @ w
        if i % 3 == 1:
            return torch.matmul(oh.to(w.dtype), w)
        return oh.type_as(w).mm(w)

    def forward(self, x):
        return self.top(torch.cat([self.read(i, x[:, i]) for i in range(FIELDS)], 1))


def test_one_hot_products_become_lookups_and_split_exactly():
    model = OneHotProducts().eval()
    done = capture(model, (_ids(8),), paths=("symbolic",))
    assert len(_lookups(done.gm)) == FIELDS, done.gm.graph
    assert not [n for n in done.gm.graph.nodes if n.op == "call_function" and n.target is F.one_hot]
    dmt = dmt_compile.transform(model, "2x2", (_ids(16),))
    assert dmt.plan.num_towers == 2 and len(dmt.detection.groups) == FIELDS
    for batch, seed in ((16, 1), (5, 2)):
        x = _ids(batch, seed)
        torch.testing.assert_close(dmt(x), model(x), rtol=0, atol=0)


def test_a_one_hot_wider_than_its_table_is_not_a_lookup():
    class Wider(nn.Module):  # one_hot(ids, V + 2) @ W[V + 2, D] where W is a buffer: no parameter table
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, D)
            self.register_buffer("w", torch.randn(V + 2, D))
            self.top = nn.Linear(2 * D, 1)

        def forward(self, x):
            return self.top(torch.cat([self.emb(x[:, 0]), F.one_hot(x[:, 1], V + 2).float() @ self.w], 1))

    done = capture(Wider().eval(), (_ids(8),), paths=("symbolic",))
    assert _lookups(done.gm) == [] and any(n.target is F.one_hot for n in done.gm.graph.nodes)
