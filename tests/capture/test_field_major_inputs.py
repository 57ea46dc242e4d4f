"""Inputs whose batch dim is not dim 0 (ir/batch_dims.py, passes/batch_dim_lookups.py).

A field-major `[F, B]` id matrix read as `x[i]` (also `x.select(0, i)`, `x.unbind(0)[i]`, iterating `x`)
read as the whole input before: one feature group, one tower. A time-major `[L, B]` sequence looked up
to `[L, B, D]` was refused ("not batch-major"). Expected: one group per field (the sequence: one
feature), two towers, exact against the model at two batch sizes; a transposed batch-major matrix
(`x.t()[i]`, `x.T.unbind(0)`, `x.permute(1, 0)[i]`) keeps its columns; a pooled lookup over the batch
dim is refused with a typed error naming the lookup.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from helpers import FieldPicks
from dmt_compile.errors import DetectionError

F, V, D, L = 4, 10, 4, 6

# (pick of field i, whether the input is field-major [F, B])
SPELLINGS = {
    "field_major_index": (lambda x, i: x[i], True),
    "field_major_index_slice": (lambda x, i: x[i, :], True),
    "field_major_select": (lambda x, i: x.select(0, i), True),
    "field_major_unbind": (lambda x, i: torch.unbind(x, 0)[i], True),
    "field_major_iter": (lambda x, i: list(x)[i], True),
    "field_major_long": (lambda x, i: x.long()[i], True),
    "field_major_t_column": (lambda x, i: x.t()[:, i], True),
    "t_index": (lambda x, i: x.t()[i], False),
    "T_unbind": (lambda x, i: x.T.unbind(0)[i], False),
    "torch_unbind_t": (lambda x, i: torch.unbind(x.t(), 0)[i], False),
    "permute_index": (lambda x, i: x.permute(1, 0)[i], False),
    "transpose_index": (lambda x, i: x.transpose(0, 1)[i], False),
}


def _ids(batch: int, seed: int, field_major: bool) -> torch.Tensor:
    x = torch.randint(0, V, (batch, F), generator=torch.Generator().manual_seed(seed))
    return x.t().contiguous() if field_major else x


def _assert_exact(dmt, model, *inputs):
    torch.testing.assert_close(dmt(*inputs), model(*inputs), rtol=0, atol=0)


@pytest.mark.parametrize("spelling", sorted(SPELLINGS))
def test_each_spelling_gives_a_group_per_field(spelling):
    pick, field_major = SPELLINGS[spelling]
    model = FieldPicks(pick, F, V, D).eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(16, 0, field_major),))
    assert len(dmt.detection.groups) == F and dmt.plan.num_towers == 2, dmt.plan
    for batch in (16, 5):
        _assert_exact(dmt, model, _ids(batch, batch, field_major))


def test_example_batch_equal_to_fields_reads_dim_0():
    """[F, F]: which dim carries samples is ambiguous; dim 0 is taken (one group), still exact."""
    model = FieldPicks(SPELLINGS["field_major_index"][0], F, V, D).eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(F, 0, True),))
    assert len(dmt.detection.groups) == 1
    _assert_exact(dmt, model, _ids(F, 1, True))


class TimeMajor(nn.Module):
    """A time-major [L, B] sequence pooled over dim 0, a [B] id, and (spelling) how the sequence is read."""

    def __init__(self, read):
        super().__init__()
        self.read = read
        self.seq, self.item = nn.Embedding(V, D), nn.Embedding(V, D)
        self.top = nn.Linear(2 * D, 1)

    def forward(self, seq, item):
        return self.top(torch.cat([self.read(self.seq, seq), self.item(item)], 1))


READS = {
    "mean_0": lambda emb, s: emb(s).mean(0),
    "offset_sum_0": lambda emb, s: emb(s + 0).sum(dim=0),
    "last_3": lambda emb, s: emb(s[-3:]).max(0).values,
    "masked": lambda emb, s: (emb(s) * (s > 0).unsqueeze(-1)).sum(0),
    "three_d": lambda emb, s: emb(s.unsqueeze(-1)).sum((0, 2)),
}


def _seq(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (L, batch), generator=g), torch.randint(0, V, (batch,), generator=g)


@pytest.mark.parametrize("read", sorted(READS))
def test_time_major_sequence_is_looked_up_batch_first(read):
    model = TimeMajor(READS[read]).eval()
    dmt = dmt_compile.transform(model, "2x2", _seq(16, 0))
    assert len(dmt.detection.groups) == 2 and dmt.plan.num_towers == 2, dmt.plan
    lookup = next(lk for lk in dmt.detection.lookups if "seq" in lk.features)
    assert lookup.out_shape[0] == 16  # batch-first in the graph
    for batch in (16, 5):
        _assert_exact(dmt, model, *_seq(batch, batch))


def test_time_major_gru():
    class Gru(nn.Module):
        def __init__(self):
            super().__init__()
            self.seq, self.item = nn.Embedding(V, D), nn.Embedding(V, D)
            self.rnn = nn.GRU(D, D)  # batch_first=False: [L, B, D]
            self.top = nn.Linear(2 * D, 1)

        def forward(self, seq, item):
            _, h = self.rnn(self.seq(seq))
            return self.top(torch.cat([h[-1], self.item(item)], 1))

    model = Gru().eval()
    dmt = dmt_compile.transform(model, "2x2", _seq(16, 0))
    assert dmt.plan.num_towers == 2
    for batch in (16, 5):
        torch.testing.assert_close(dmt(*_seq(batch, batch)), model(*_seq(batch, batch)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("path", ["symbolic", "export"])
def test_field_major_and_time_major_together(path):
    """On the export path too: the inputs' batch dim (dim 1) is the dynamic one, and the exported
    `aten.permute` of the batch-major matrix is a layout op like `x.permute`."""
    import field_major

    model, example = field_major.factory(batch_size=12)
    model.eval()
    dmt = dmt_compile.transform(model, "2x2", example, capture_paths=(path,))
    assert dmt.capture_report.path == path
    assert len(dmt.detection.groups) == field_major.FIELDS + 3 and dmt.plan.num_towers == 2
    for batch in (12, 7):
        _assert_exact(dmt, model, *field_major.inputs(batch, batch))


def test_bag_pooled_over_the_batch_dim_is_refused():
    """EmbeddingBag of `[L, B]` ids pools each position's ids across the batch: not per sample."""
    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag, self.item = nn.EmbeddingBag(V, D, mode="sum"), nn.Embedding(V, D)
            self.top = nn.Linear(2 * D, 1)

        def forward(self, seq, item):
            return self.top(torch.cat([self.bag(seq).sum(0, keepdim=True).expand(item.shape[0], D),
                                       self.item(item)], 1))

    with pytest.raises(DetectionError, match=r"(?s)lookup bag \(embedding_bag\) reads ids seq .* batch is dim 1.*pools"
                                             r".*fix: pass these ids batch-first"):
        dmt_compile.transform(Bag().eval(), "2x2", _seq(16, 0))


def test_batch_size_read_off_a_field_major_input_is_guarded():
    """`int(x.shape[1])` of an `[F, B]` input is the batch size: the specialize path guards it (before:
    classified as a static size and baked, and batch 5 failed inside the graph with an untyped error)."""
    from dmt_compile.errors import SpecializationError

    class Sized(nn.Module):
        def __init__(self):
            super().__init__()
            self.tables = nn.ModuleList(nn.Embedding(V, D) for _ in range(F))
            self.top = nn.Linear(D, 1)

        def forward(self, x):
            b = int(x.shape[1])
            return self.top(torch.stack([t(x[i]) for i, t in enumerate(self.tables)], 0).reshape(F, b, D).sum(0))

    model = Sized().eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(8, 0, True),))
    assert [s.dependence for s in dmt.capture_report.specializations] == ["batch"]
    _assert_exact(dmt, model, _ids(8, 1, True))
    with pytest.raises(SpecializationError, match="batch size"):
        dmt(_ids(5, 2, True))


def test_field_major_matrix_looked_up_whole_is_exact():
    """One offset table looked up with the whole `[F, B]` matrix (`emb(x + off[:, None])`, `[F, B, D]`) is
    looked up batch-first; it stays one feature group (split-tables splits `[B, F]` offset matrices only)."""
    class Whole(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.item = nn.Embedding(F * V, D), nn.Embedding(V, D)
            self.register_buffer("off", torch.arange(F) * V)
            self.top = nn.Linear(2 * D, 1)

        def forward(self, x, item):
            return self.top(torch.cat([self.emb(x + self.off[:, None]).sum(0), self.item(item)], 1))

    def inputs(batch, seed):
        return _ids(batch, seed, True), torch.randint(0, V, (batch,), generator=torch.Generator().manual_seed(seed))

    model = Whole().eval()
    dmt = dmt_compile.transform(model, "2x2", inputs(16, 0))
    assert [g.features for g in dmt.detection.groups] == [("x",), ("item",)] and dmt.plan.num_towers == 2
    for batch in (16, 5):
        _assert_exact(dmt, model, *inputs(batch, batch))
