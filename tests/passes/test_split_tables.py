"""split-tables alone: concatenated tables with per-field offsets become one table per field."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import compact, prepare, run_alone

from dmt_compile.errors import InputError, PlanError
from dmt_compile.ir.table_splits import TableSplits
from dmt_compile.passes.split_tables import SplitTables

DIMS = (3, 5, 4)


class OffsetTable(nn.Module):
    """One nn.Embedding(sum(dims), D) plus a dim-1 linear-part table, offsets in a buffer."""

    def __init__(self, dims=DIMS, dim=4):
        super().__init__()
        self.embedding = nn.Embedding(sum(dims), dim)
        self.linear = nn.Embedding(sum(dims), 1)
        offsets = torch.tensor([0, dims[0], dims[0] + dims[1]])
        self.register_buffer("offsets", offsets)

    def forward(self, x):
        x = x + self.offsets.unsqueeze(0)
        return self.embedding(x).sum((1, 2)).unsqueeze(1) + self.linear(x).sum(1)


def _ids(batch=6, dims=DIMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, d, (batch,), generator=g) for d in dims], dim=1)


EXPECTED = """\
inputs: x
getitem = operator.getitem(%x, (:, 0))   # 6
check_field_ids = dmt_compile.ir.table_splits.check_field_ids(%getitem, 0, 3, 'x[:,0]', 'embedding.weight')   # 6
dmt_split_embedding_f0 = dmt.split_embedding_f0 [Embedding](%check_field_ids)   # 6x4"""


def test_offset_table_is_split_exactly_and_recorded():
    model = OffsetTable()
    gm, ctx = prepare(model, (_ids(),))
    gm, added, removed = run_alone(SplitTables(), gm, ctx)
    splits = ctx.get(TableSplits)
    assert [(s.table, [(p.start, p.stop) for p in s.pieces], s.source) for s in splits.splits] == [
        ("embedding.weight", [(0, 3), (3, 8), (8, 12)], "offsets in the graph"),
        ("linear.weight", [(0, 3), (3, 8), (8, 12)], "offsets in the graph")]
    assert compact(gm).startswith(EXPECTED)
    assert added["Embedding"] == 4 and "offsets" not in str(gm.code)  # 2 tables -> 6 tables, offsets folded away
    assert not hasattr(gm, "embedding") and not hasattr(gm, "linear")  # the originals are gone
    for batch, seed in ((6, 1), (2, 2)):
        x = _ids(batch, seed=seed)
        assert torch.allclose(gm(x), model(x), atol=1e-6)
    state = {k: v for k, v in gm.state_dict().items() if k.startswith("dmt.")}
    assert torch.equal(splits.rebuild(state)["embedding.weight"], model.embedding.weight.detach())


def test_ids_outside_a_fields_rows_are_a_typed_error_naming_the_field():
    gm, ctx = prepare(OffsetTable(), (_ids(),))
    gm, _, _ = run_alone(SplitTables(), gm, ctx)
    x = _ids()
    x[2, 1] = 5  # field 1 has 5 rows: 0..4
    with pytest.raises(InputError, match=r"feature x\[:,1\] has id 5, outside its rows \[0, 5\)"):
        gm.forward(x)


class FieldAware(nn.Module):
    """FFM: F tables, each looked up by every field with the same offsets."""

    def __init__(self, dims=DIMS, dim=2):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(sum(dims), dim) for _ in dims)
        self.register_buffer("offsets", torch.tensor([0, dims[0], dims[0] + dims[1]]))

    def forward(self, x):
        x = x + self.offsets
        xs = [t(x) for t in self.embeddings]
        return (xs[1][:, 0] * xs[0][:, 1] + xs[2][:, 0] * xs[0][:, 2]).sum(1, keepdim=True)


def test_field_aware_tables_are_split_the_same_way():
    model = FieldAware()
    gm, ctx = prepare(model, (_ids(),))
    gm, added, _ = run_alone(SplitTables(), gm, ctx)
    assert len(ctx.get(TableSplits).splits) == 3 and added["Embedding"] == 6
    assert torch.allclose(gm(_ids(seed=3)), model(_ids(seed=3)), atol=1e-6)


class PreOffset(nn.Module):
    """Ids arrive pre-offset in the input: no offsets in the graph."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(12, 4)

    def forward(self, x):
        return self.embedding(x).sum((1, 2)).unsqueeze(1)


def test_pre_offset_ids_split_by_ranges_inferred_from_data():
    """Before: one table over a pre-offset [B, 3] matrix, no offsets in the model.
    Expected: 3 tables, rows cut at each column's smallest example id, checked at run time."""
    model = PreOffset()
    x = _ids() + torch.tensor([0, 3, 8])
    gm, ctx = prepare(model, (x,))
    gm, added, removed = run_alone(SplitTables(), gm, ctx)
    split = ctx.get(TableSplits).splits[0]
    lows, highs = [int(v) for v in x.amin(0)], [int(v) for v in x.amax(0)]
    assert split.source.startswith("inferred from data; pass table_ranges= to override")
    assert [p.rows for p in split.pieces] == [range(0, lows[1]), range(highs[0] + 1, lows[2]),
                                              range(highs[1] + 1, 12)]
    assert sum(isinstance(m, nn.Embedding) for m in gm.modules()) == 3 and not hasattr(gm, "embedding")
    assert torch.equal(gm(x), model(x))
    with pytest.raises(InputError, match=r"feature x\[:,1\] has id 11, outside its rows .*inferred (.|\n)*table_ranges="):
        gm.forward(torch.tensor([[0, 11, 9]]))


def test_unseen_rows_between_fields_are_read_and_rebuilt_from_both_pieces():
    """Expected: an id the example did not show (between two fields' observed ids) reads its original row;
    the flat table rebuilt from trained pieces keeps the change made through either piece."""
    model = PreOffset()
    x = torch.tensor([[0, 4, 9], [2, 6, 11], [1, 5, 10], [0, 6, 9]])  # gaps: rows 3 (fields 0/1), 7-8 (1/2)
    gm, ctx = prepare(model, (x,))
    gm, _, _ = run_alone(SplitTables(), gm, ctx)
    split = ctx.get(TableSplits).splits[0]
    assert [(start, len(rows)) for start, rows in split.shared_gaps] == [(3, 1), (7, 2)]
    unseen = torch.tensor([[1, 3, 8]])
    assert torch.equal(gm(unseen), model(unseen))
    pieces = {p.parameter: gm.get_parameter(p.parameter).detach().clone() for p in split.pieces}
    pieces[split.pieces[1].parameter][0] += 1.0  # row 3 trained through field 1's piece only
    whole = split.whole(pieces)
    assert torch.equal(whole[3], model.embedding.weight[3].detach() + 1.0)
    assert torch.equal(whole[7:9], model.embedding.weight[7:9].detach())


def test_overlapping_pre_offset_ids_stay_whole_and_the_note_names_table_ranges():
    gm, ctx = prepare(PreOffset(), (torch.tensor([[0, 1, 8], [5, 4, 9]]),))
    before = compact(gm)
    gm, added, removed = run_alone(SplitTables(), gm, ctx)
    assert compact(gm) == before and not added
    note = ctx.get(TableSplits).notes[0]
    assert "reads 3 fields" in note and "overlap" in note and "table_ranges=" in note


class OffsetsAsInput(nn.Module):
    """One table whose per-field offsets arrive as a second input: the ids are not one pre-offset matrix."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(sum(DIMS), 4)

    def forward(self, x, offsets):
        return self.embedding(x + offsets.unsqueeze(0)).sum((1, 2)).unsqueeze(1)


def test_ids_computed_from_two_inputs_are_not_split_by_inferred_ranges():
    """Before: one table read with `x + offsets`, both inputs. Expected: unchanged graph (no ranges are
    guessed from the example ids), and a note naming both inputs and table_ranges=."""
    offsets = torch.tensor([0, DIMS[0], DIMS[0] + DIMS[1]])
    gm, ctx = prepare(OffsetsAsInput(), (_ids(), offsets))
    before = compact(gm)
    gm, added, removed = run_alone(SplitTables(), gm, ctx)
    assert compact(gm) == before and not added and not ctx.get(TableSplits).splits
    note = ctx.get(TableSplits).notes[0]
    assert "2 inputs (offsets, x)" in note and "table_ranges=" in note


class PreOffsetBesideNumeric(nn.Module):
    """Pre-offset ids and numeric values concatenated into one float matrix, ids cut back out of it
    (pytorch_tabular's TabNet packs its inputs so)."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(12, 4)
        self.top = nn.Linear(14, 1)

    def forward(self, ids, num):
        m = torch.cat([ids.float(), num], dim=1)
        return self.top(torch.cat([self.embedding(m[:, :3].long()).flatten(1), m[:, 3:]], 1))


def test_pre_offset_ids_cut_from_a_matrix_with_numeric_columns_are_split_by_inferred_ranges():
    """Before: the ids' ancestors include the numeric input (through the concatenation), so the table
    stayed whole ("ids computed from 2 inputs"). Expected: the ids' columns come from `ids` alone:
    3 tables by inferred ranges, same function."""
    model = PreOffsetBesideNumeric()
    x, num = _ids() + torch.tensor([0, 3, 8]), torch.rand(_ids().shape[0], 2)
    gm, ctx = prepare(model, (x, num))
    gm, _, _ = run_alone(SplitTables(), gm, ctx)
    split = ctx.get(TableSplits).splits[0]
    assert split.source.startswith("inferred from data") and len(split.pieces) == 3
    assert torch.equal(gm(x, num), model(x, num))


def test_too_few_towers_error_counts_the_fields_and_names_table_ranges():
    import dmt_compile
    from dmt_compile.errors import PlanError
    with pytest.raises(PlanError, match=r"reads 3 fields \(x\[:,0\.\.2\]\).*table_ranges="):
        dmt_compile.transform(PreOffset(), "2x2", (torch.tensor([[0, 1, 8], [5, 4, 9]]),), num_towers=2)


def test_declared_ranges_split_and_check_at_run_time():
    model = PreOffset()
    x = _ids() + torch.tensor([0, 3, 8])
    gm, ctx = prepare(model, (x,))
    gm, _, _ = run_alone(SplitTables(table_ranges={"embedding": [3, 5, 4]}), gm, ctx)
    assert ctx.get(TableSplits).splits[0].source == "declared ranges"
    assert torch.allclose(gm(x), model(x), atol=1e-6)
    with pytest.raises(InputError, match=r"feature x\[:,0\] has id 3, outside its rows \[0, 3\)"):
        gm.forward(torch.tensor([[3, 3, 8]]))


@pytest.mark.parametrize("ranges, message", [
    ({"nope": [3, 5, 4]}, "table_ranges names 'nope'"),
    ({"embedding": [3, 5]}, "lists 2 fields but its lookups read"),
    ({"embedding": [(0, 5), (3, 8), (8, 12)]}, "overlapping ranges"),
    ({"embedding": [(0, 3), (3, 8), (8, 13)]}, "outside the table's 12 rows"),
    ({"embedding": [3]}, "at least two fields"),
    ([3, 5, 4], "must be a dict"),
])
def test_bad_declared_ranges_are_typed_errors(ranges, message):
    gm, ctx = prepare(PreOffset(), (_ids() + torch.tensor([0, 3, 8]),))
    with pytest.raises(PlanError, match=message):
        run_alone(SplitTables(table_ranges=ranges), gm, ctx)


class Interleaved(nn.Module):
    """Field-aware hashing: row = id * F + field, one table for all fields."""

    def __init__(self, fields=3, buckets=5, dim=2):
        super().__init__()
        self.fields = fields
        self.table = nn.Embedding(buckets * fields, dim)
        self.register_buffer("field", torch.arange(fields), persistent=False)

    def forward(self, ids):
        return self.table(ids * self.fields + self.field).sum((1, 2)).unsqueeze(1)


def test_interleaved_field_ids_are_split_into_strided_pieces():
    model = Interleaved()
    x = torch.randint(0, 5, (6, 3), generator=torch.Generator().manual_seed(0))
    gm, ctx = prepare(model, (x,))
    gm, _, _ = run_alone(SplitTables(), gm, ctx)
    (split,) = ctx.get(TableSplits).splits
    assert split.source == "interleaved ids in the graph"
    assert [(p.start, p.step, len(p.rows)) for p in split.pieces] == [(0, 3, 5), (1, 3, 5), (2, 3, 5)]
    assert torch.allclose(gm(x), model(x), atol=1e-6)
    state = {k: v for k, v in gm.state_dict().items() if k.startswith("dmt.")}
    assert torch.equal(split_rebuilt := ctx.get(TableSplits).rebuild(state)["table.weight"], model.table.weight.detach())
    assert split_rebuilt.shape == (15, 2)


def test_example_ids_outside_the_implied_rows_leave_the_table_whole():
    model = OffsetTable()
    x = _ids()
    x[0, 0] = 7  # field 0 owns 3 rows by the offsets; 7 reads field 1's rows in the original model
    gm, ctx = prepare(model, (x,))
    gm, added, _ = run_alone(SplitTables(), gm, ctx)
    assert not added and "span [" in ctx.get(TableSplits).notes[0]


class RangeGatherTable(OffsetTable):
    """Ids with offsets gathered through an index buffer of consecutive rows (`index[x + offsets]`), and the
    numeric features' embeddings kept in the rows after the categories, read with constant ids."""

    def __init__(self, dims=DIMS, dim=4, numeric=2):
        super().__init__(dims, dim)
        self.embedding = nn.Embedding(sum(dims) + numeric, dim)
        self.register_buffer("index", torch.arange(sum(dims)))
        self.register_buffer("numeric_ids", torch.arange(sum(dims), sum(dims) + numeric))

    def forward(self, x, values):
        if (x < 0).any():  # leaves the symbolic path, as such libraries' input checks do
            raise ValueError("negative ids")
        cats = self.embedding(self.index[x + self.offsets])
        nums = self.embedding(self.numeric_ids) * values.unsqueeze(-1)
        return torch.cat([cats, nums], dim=1).sum((1, 2)).unsqueeze(1)


def test_ids_gathered_through_a_range_and_constant_id_rows_split_exactly():
    # before: the gather hid the offsets and the constant-id lookup read the same table: it stayed whole
    model = RangeGatherTable()
    values = torch.rand(6, 2)
    gm, ctx = prepare(model, (_ids(), values))
    gm, added, removed = run_alone(SplitTables(), gm, ctx)
    [split] = ctx.get(TableSplits).splits
    assert (split.table, [(p.start, p.stop) for p in split.pieces], split.source) == (
        "embedding.weight", [(0, 3), (3, 8), (8, 12), (12, 14)], "offsets in the graph")
    assert split.pieces[-1].feature == "(rows read with constant ids)"
    assert added["Embedding"] == 2 and not hasattr(gm, "embedding")  # 2 lookups -> 4
    for batch, seed in ((6, 1), (2, 2)):
        x, v = _ids(batch, seed=seed), torch.rand(batch, 2)
        assert torch.allclose(gm(x, v), model(x, v), atol=1e-6)
    state = {k: v for k, v in gm.state_dict().items() if k.startswith("dmt.")}
    assert torch.equal(ctx.get(TableSplits).rebuild(state)["embedding.weight"], model.embedding.weight.detach())


def test_a_gather_through_a_buffer_that_is_no_range_keeps_the_table_whole():
    model = RangeGatherTable()
    model.index = torch.arange(sum(DIMS)).flip(0)
    gm, ctx = prepare(model, (_ids(), torch.rand(6, 2)))
    gm, _, _ = run_alone(SplitTables(), gm, ctx)
    splits = ctx.get(TableSplits)
    assert splits.splits == ()
    assert splits.notes == ("table embedding.weight stays whole: it is also looked up with constant ids and its fields' "
                            "rows are inferred from data; pass table_ranges= to override, not offsets in the graph",)


def test_one_example_sample_is_too_few_to_infer_ranges_and_the_note_says_so():
    """Before: at batch 1 each column showed one id, always a disjoint 'range', so a [1, L] sequence of one
    vocabulary was split per position and a later batch's ids were refused. Expected: no inference from so
    few samples (columns of one vocabulary look disjoint by chance: `chance_disjoint`), the note names the
    fix; with enough samples the same ids split as before."""
    from dmt_compile.passes.table_ranges import MAX_CHANCE, chance_disjoint

    gm, ctx = prepare(PreOffset(), (torch.tensor([[1, 5, 9]]),))
    gm, added, _ = run_alone(SplitTables(), gm, ctx)
    note = ctx.get(TableSplits).notes[0]
    assert not added and "too few" in note and "table_ranges=" in note
    assert chance_disjoint(3, 1) == 1.0 and chance_disjoint(3, 2) > MAX_CHANCE > chance_disjoint(3, 4)
    gm, ctx = prepare(PreOffset(), (torch.tensor([[0, 4, 9], [2, 6, 11], [1, 5, 10], [0, 6, 9]]),))
    gm, added, _ = run_alone(SplitTables(), gm, ctx)
    assert added
