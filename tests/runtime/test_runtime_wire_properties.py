"""Property tests of the runtime's pure pieces: id streams round-trip, row shards partition exactly."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from dmt_compile.runtime.row_wise import RowShard, row_starts, split_by_shard, to_bags
from dmt_compile.runtime.wire import IdField, Stream, decode, decode_sources, encode

lengths_st = st.lists(st.integers(0, 4), min_size=0, max_size=12)


def _jagged(lengths, rows=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths, dtype=torch.int64)
    values = torch.randint(0, rows, (int(lengths.sum()),), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)[:-1]]) if lengths.numel() \
        else torch.zeros(0, dtype=torch.int64)
    return values, offsets, lengths


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 9), trailing=st.sampled_from([(), (1,), (3,), (2, 2)]))
def test_rows_field_round_trips(n, trailing):
    x = torch.randint(0, 100, (n, *trailing))
    field = IdField("rows", (0,), trailing, "int64")
    out = decode(field, encode(field, [x]))
    assert torch.equal(out[0], x)


@settings(max_examples=60, deadline=None)
@given(lengths=lengths_st, weighted=st.booleans(), last=st.booleans())
def test_jagged_field_round_trips(lengths, weighted, last):
    values, offsets, _ = _jagged(lengths)
    if last:
        offsets = torch.cat([offsets, torch.tensor([values.numel()])]) if lengths else torch.zeros(1, dtype=torch.int64)
    weights = torch.rand(values.numel()) if weighted else None
    field = IdField("jagged", (0, 1, 2 if weighted else None), (), "int64", "int64", last,
                    "float32" if weighted else None)
    ids = [values, offsets, weights]
    out = decode(field, encode(field, ids))
    assert torch.equal(out[0], values) and torch.equal(out[1], offsets)
    if weighted:
        assert torch.equal(out[2], weights)


@settings(max_examples=40, deadline=None)
@given(per_source=st.lists(lengths_st, min_size=1, max_size=4))
def test_jagged_sources_concatenate_in_source_order(per_source):
    field = IdField("jagged", (0, 1, None))
    streams, all_values, all_lengths = [], [], []
    for i, lengths in enumerate(per_source):
        values, offsets, lens = _jagged(lengths, seed=i)
        streams.append(encode(field, [values, offsets, None]))
        all_values.append(values)
        all_lengths.append(lens)
    out = decode_sources(field, streams)
    assert torch.equal(out[0], torch.cat(all_values))
    lengths = torch.cat(all_lengths)
    expected = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)[:-1]]) if lengths.numel() \
        else torch.zeros(0, dtype=torch.int64)
    assert torch.equal(out[1], expected)


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 200), members=st.integers(1, 8))
def test_row_starts_partition_the_rows(rows, members):
    starts = row_starts(rows, members)
    assert starts[0] == 0 and starts[-1] == rows and len(starts) == members + 1
    sizes = [b - a for a, b in zip(starts, starts[1:])]
    assert max(sizes) - min(sizes) <= 1 and all(s >= 0 for s in sizes)


@settings(max_examples=60, deadline=None)
@given(lengths=lengths_st, members=st.integers(1, 5), weighted=st.booleans(), mean=st.booleans())
def test_row_shard_partial_sums_add_up_to_the_full_bag(lengths, members, weighted, mean):
    rows, dim = 40, 3
    table = torch.randn(rows, dim, dtype=torch.float64)
    values, offsets, lens = _jagged(lengths, rows)
    weights = torch.rand(values.numel(), dtype=torch.float64) if weighted and not mean else None
    bags = to_bags("jagged", [values, offsets, weights], (0, 1), 2 if weights is not None else None, False, "jagged")
    starts = row_starts(rows, members)
    parts = split_by_shard(bags, starts)
    # every id lands in exactly one shard, with the right local row number
    assert sum(int(p.values.numel()) for p in parts) == values.numel()
    assert all(torch.equal(sum(p.lengths for p in parts), bags.lengths) for _ in [0])
    total = torch.zeros(len(lengths), dim, dtype=torch.float64)
    for j, part in enumerate(parts):
        shard = RowShard(table, starts[j], starts[j + 1], "t")
        shard.weight.data = shard.weight.data.double()
        assert part.weights is None or part.weights.dtype == torch.float64
        total = total + shard(part)
    if not lengths:
        return
    mode = "mean" if mean else "sum"
    if mean:
        total = total / bags.lengths.clamp(min=1).unsqueeze(1).double()
    # float64 weights stay float64 (they once travelled as float32: a near-zero bag then missed rtol)
    expected = F.embedding_bag(values, table, offsets, mode=mode, per_sample_weights=weights)
    assert torch.allclose(total, expected, atol=1e-12)


def test_weights_travel_in_the_fields_dtype():
    from dmt_compile.runtime.wire import IdField, _cat, weights_dtype

    f32 = IdField("jagged", (0, 1, 2), weights_dtype="float32")
    f64 = IdField("jagged", (0, 1, 2), weights_dtype="float64")
    plain = IdField("jagged", (0, 1, None))
    assert weights_dtype([plain]) is None
    assert weights_dtype([plain, f32]) is torch.float32 and weights_dtype([f32, f64]) is torch.float64
    w = torch.tensor([0.1, 0.2], dtype=torch.float64)
    s = Stream(torch.tensor([1, 2]), torch.tensor([2]), w)
    bare = Stream(torch.tensor([3]), torch.tensor([1]), None)
    out = _cat([s, bare], torch.float64)
    assert out.weights.dtype == torch.float64 and torch.equal(out.weights, torch.tensor([0.1, 0.2, 1.0], dtype=torch.float64))
    assert _cat([], torch.float64).weights.dtype == torch.float64  # an empty member sends the same dtype
    assert _cat([s], True).weights.dtype == torch.float32  # plain True keeps the old float32
