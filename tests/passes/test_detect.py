"""detect alone: lookups, features, groups and annotations; the graph is not changed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import TwoTables, compact, ids, prepare, run_alone

from dmt_compile.errors import DetectionError
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.meta import FEATURES, GROUP, LOOKUP
from dmt_compile.passes.detect import Detect


def test_two_column_lookups_are_two_features_in_two_groups():
    gm, ctx = prepare(TwoTables(), (ids(),))
    before = compact(gm)
    gm, added, removed = run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [(lk.node, lk.kind, lk.features, lk.width) for lk in det.lookups] == [
        ("a", "embedding", ("x[:,0]",), 4), ("b", "embedding", ("x[:,1]",), 4)]
    assert [(g.features, g.lookups) for g in det.groups] == [(("x[:,0]",), (0,)), (("x[:,1]",), (1,))]
    assert det.batch_size == 6 and det.dense_features == ()
    assert not added and not removed and compact(gm) == before
    a = next(n for n in gm.graph.nodes if n.name == "a")
    assert (a.meta[LOOKUP], a.meta[FEATURES], a.meta[GROUP]) == (0, ("x[:,0]",), 0)


class SharedTable(nn.Module):
    def __init__(self):
        super().__init__()
        self.t = nn.Embedding(10, 4)
        self.u = nn.Embedding(10, 4)

    def forward(self, x):
        return torch.cat([self.t(x[:, 0]), self.t(x[:, 1]), self.u(x[:, 2])], dim=1).sum(1, keepdim=True)


def test_a_shared_table_makes_one_group_and_says_why():
    gm, ctx = prepare(SharedTable(), (ids(fields=3),))
    run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [g.features for g in det.groups] == [("x[:,0]", "x[:,1]"), ("x[:,2]",)]
    assert det.groups[0].reasons == ("table t.weight is shared by several lookups",)


class DenseEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.t = nn.Embedding(10, 4)
        self.d = nn.Linear(1, 4)

    def forward(self, x, dense):
        return torch.stack([self.t(x[:, 0]), self.d(dense)], dim=1).sum((1, 2)).unsqueeze(1)


def test_dense_embedding_features_are_listed_as_data_parallel():
    gm, ctx = prepare(DenseEmbedding(), (ids(), torch.ones(6, 1)))
    run_alone(Detect(), gm, ctx)
    assert ctx.get(Detection).dense_features == ("dense",)


def test_no_lookup_is_a_typed_error():
    gm, ctx = prepare(nn.Linear(3, 1), (torch.ones(2, 3),))
    with pytest.raises(DetectionError, match="no embedding lookup"):
        run_alone(Detect(), gm, ctx)


class EllipsisColumns(nn.Module):
    """Per-field tables read as `x[..., i]` and `x.select(-1, i)` (rtdl's CategoricalEmbeddings spelling)."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))

    def forward(self, x):
        e = [self.tables[0](x[..., 0]), self.tables[1](x[..., -2]), self.tables[2](x.select(-1, 2))]
        return torch.stack(e, dim=-2).sum((1, 2)).unsqueeze(1)


def test_ellipsis_and_negative_column_picks_of_a_matrix_are_columns():
    # before: `x[..., i]` was not read as a column pick, so all three tables served one feature `x`
    gm, ctx = prepare(EllipsisColumns(), (ids(fields=3),))
    gm, _, _ = run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [lk.features for lk in det.lookups] == [("x[:,0]",), ("x[:,1]",), ("x[:,2]",)]
    assert len(det.groups) == 3


class ConcatThenPick(nn.Module):
    """Ids and numeric values concatenated after an identity embedding layer, then picked per column and
    cast back (pytorch_tabular's TabNet: `torch.cat((categorical, continuous), 1)[:, i].long()`; here
    through `x[:, :3]`)."""

    def __init__(self):
        super().__init__()
        self.embedding_layer = nn.Identity()
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))

    def forward(self, cat, num):
        x = self.embedding_layer({"categorical": cat, "continuous": num})
        x = torch.cat((x["categorical"], x["continuous"]), dim=1)
        ids = x[:, :3].long()  # an open-ended slice of a known width: columns 0, 1, 2
        e = [t(ids[:, i]) for i, t in enumerate(self.tables)]
        return torch.cat(e + [x[:, 3:]], 1).sum(1, keepdim=True)


def test_columns_of_a_concatenation_of_inputs_are_columns_of_those_inputs():
    # before: every table read ids of `cat` and `num` at once, one feature group
    gm, ctx = prepare(ConcatThenPick(), (ids(fields=3), torch.rand(6, 2)))
    gm, _, _ = run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [lk.features for lk in det.lookups] == [("cat[:,0]",), ("cat[:,1]",), ("cat[:,2]",)]
    assert len(det.groups) == 3


class ImputedColumns(nn.Module):
    """Missing ids (-1) imputed per column before the per-field lookups: `torch.where(x == -1, fill, x)` with a
    per-column fill buffer, and `masked_fill` with a mask of the same columns (PyTorch Frame's
    `na_strategy=MOST_FREQUENT`), after a view to the same shape."""

    def __init__(self):
        super().__init__()
        self.register_buffer("fill", torch.tensor([1, 2, 3]))
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)  # a view to the same shape keeps columns too
        x = torch.where(x == -1, self.fill, x).masked_fill(x < -1, 0)
        return torch.cat([t(x[:, i]) for i, t in enumerate(self.tables)], 1).sum(1, keepdim=True)


class ImputedFromAnotherInput(ImputedColumns):
    def forward(self, x, missing):
        x = torch.where(missing, self.fill, x)  # a mask from another input: its columns are not x's
        return torch.cat([t(x[:, i]) for i, t in enumerate(self.tables)], 1).sum(1, keepdim=True)


def test_a_masked_fill_from_the_same_columns_keeps_columns_apart():
    # before: the `torch.where` was no element-wise op, so all three tables read one feature `x` (one group)
    gm, ctx = prepare(ImputedColumns(), (ids(fields=3),))
    gm, _, _ = run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [lk.features for lk in det.lookups] == [("x[:,0]",), ("x[:,1]",), ("x[:,2]",)]
    assert len(det.groups) == 3
    # the mask of another input is a second source: the ids are not columns of x alone
    gm, ctx = prepare(ImputedFromAnotherInput(), (ids(fields=3), torch.zeros(6, 3, dtype=torch.bool)))
    gm, _, _ = run_alone(Detect(), gm, ctx)
    assert len(ctx.get(Detection).groups) == 1


class PaddedWithTemplateIds(nn.Module):
    """A sequence of looked-up embeddings padded to a window with a pad row looked up at ids made by
    `emb.new_full((B, n), pad)` (a transformer's padding to its attention window): those ids take only
    the shape and dtype of the embeddings, their values are the constant pad id."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.words = nn.Embedding(10, 4), nn.Embedding(10, 4), nn.Embedding(3, 4)

    def forward(self, x):
        emb = self.a(x[:, 0:3]) + self.b(x[:, 3:6])
        pad_ids = emb.new_full((emb.size(0), 2), 1, dtype=torch.long)
        zeros = torch.zeros_like(emb[:, :1, 0], dtype=torch.long)
        return torch.cat([emb, self.words(pad_ids), self.words(zeros)], dim=1).sum((1, 2)).unsqueeze(1)


def test_ids_made_from_a_lookups_shape_are_constant_ids():
    # before: new_full / zeros_like took the atoms of the embeddings, so the pad lookups were features whose
    # ids came from lookups, and sptt-rewrite refused the model
    import dmt_compile

    model = PaddedWithTemplateIds().eval()
    x = torch.randint(0, 10, (6, 6), generator=torch.Generator().manual_seed(0))
    gm, ctx = prepare(model, (x,))
    run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [lk.features for lk in det.lookups] == [("x[:,0]", "x[:,1]", "x[:,2]"), ("x[:,3]", "x[:,4]", "x[:,5]")]
    assert len([d for d in det.dense_features if "constant ids" in d]) == 2
    dmt = dmt_compile.transform(model, "2x2", (x,))
    assert dmt.plan.num_towers == 2
    y = torch.randint(0, 10, (3, 6), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(dmt(y), model(y))
