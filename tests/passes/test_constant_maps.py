"""Element-wise maps and column gathers through constants (ir/constant_maps.py, asked by ir/id_sources.py).

Before: ids mapped through a constant before the per-field picks -- a vocabulary remap buffer read at
the ids (`remap[x]`, `torch.take`, `index_select(0, ...)`), numeric bucketing by constant boundaries
(`torch.bucketize`, `torch.searchsorted`), or the columns reordered by a buffer of column indices
(`x.index_select(1, cols)`) -- read as the whole input: every lookup in one feature group, one tower.
Expected: one group per field, two towers, exact at two batch sizes; a 2-D table read at the ids, a
remap that is not constant, and a gather along the batch dim still read the whole input.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile

F, V, D = 4, 10, 4


class Mapped(nn.Module):
    def __init__(self, spelling: str):
        super().__init__()
        self.spelling = spelling
        self.register_buffer("remap", torch.randperm(V, generator=torch.Generator().manual_seed(3)))
        self.register_buffer("remap2d", torch.randint(0, V, (V, 1), generator=torch.Generator().manual_seed(4)))
        self.register_buffer("bounds", torch.linspace(-1.5, 1.5, V - 1))
        self.register_buffer("cols", torch.tensor([2, 0, 3, 1]))
        self.register_buffer("rows", torch.arange(64).flip(0))
        self.tables = nn.ModuleList(nn.Embedding(V, D) for _ in range(F))
        self.top = nn.Linear(F * D, 1)

    def ids(self, x, dense):
        s = self.spelling
        if s == "remap_getitem":
            return self.remap[x]
        if s == "remap_take":
            return torch.take(self.remap, x)
        if s == "bucketize":
            return torch.bucketize(dense, self.bounds)
        if s == "searchsorted":
            return torch.searchsorted(self.bounds, dense.contiguous())
        if s == "column_gather":
            return x.index_select(1, self.cols)
        if s == "remap_2d":  # [B, F, 1]: not element-wise in shape
            return self.remap2d[x].squeeze(-1)
        if s == "remap_from_input":  # the table depends on the batch: not a constant
            return (self.remap + x[:1].sum() % 2)[x] % V
        if s == "batch_gather":  # rows of the batch reordered
            return x.index_select(0, self.rows[-x.shape[0]:])
        raise AssertionError(s)

    def forward(self, x, dense):
        ids = self.ids(x, dense)
        return self.top(torch.cat([t(ids[:, i]) for i, t in enumerate(self.tables)], 1))


def _inputs(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (batch, F), generator=g), torch.randn(batch, F, generator=g)


MAPS = ["remap_getitem", "remap_take", "bucketize", "searchsorted", "column_gather"]


@pytest.mark.parametrize("spelling", MAPS)
def test_ids_mapped_through_a_constant_keep_one_group_per_field(spelling):
    model = Mapped(spelling).eval()
    dmt = dmt_compile.transform(model, "2x2", _inputs(16, 0))
    assert len(dmt.detection.groups) == F and dmt.plan.num_towers == 2, dmt.plan
    for batch, seed in ((16, 0), (5, 1)):
        x = _inputs(batch, seed)
        torch.testing.assert_close(dmt(*x), model(*x), rtol=0, atol=0)


@pytest.mark.parametrize("spelling", ["remap_2d", "remap_from_input", "batch_gather"])
def test_maps_that_mix_columns_or_are_not_constant_read_the_whole_input(spelling):
    model = Mapped(spelling).eval()
    dmt = dmt_compile.transform(model, "2x2", _inputs(16, 0))
    assert len(dmt.detection.groups) == 1
    x = _inputs(16, 0)
    torch.testing.assert_close(dmt(*x), model(*x), rtol=0, atol=0)


def test_constant_map_alone_on_a_small_graph():
    """Before/Expected on the graph: the map's input is returned for a constant 1-D table, None otherwise."""
    from dmt_compile.capture.capture import capture
    from dmt_compile.ir.constant_maps import constant_column_gather, constant_map

    model = Mapped("remap_getitem").eval()
    gm = capture(model, _inputs(8, 0), {}, ("symbolic",)).gm
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    read = next(n for n in gm.graph.nodes if n.op in ("call_function", "call_method") and n.args and n.args[-1] is x
                and n.args[0].op == "get_attr")
    assert constant_map(read) is x
    assert constant_map(x) is None
    gm = capture(Mapped("column_gather").eval(), _inputs(8, 0), {}, ("symbolic",)).gm
    gather = next(n for n in gm.graph.nodes if n.op == "call_method" and n.target == "index_select")
    assert constant_column_gather(gather) == (gather.args[0], [2, 0, 3, 1])
