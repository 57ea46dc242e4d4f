"""detect: side fields of each sequence position, picked along the last dim of a `[B, L, F]` input.

Before: a behaviour sequence with per-position item attributes (torchrecsys' Bert4Rec: `items[:, :, i]`
looked up in attribute i's table, for a `[B, L, F]` tensor of the attributes of each position) was read
as one feature `items`: `x[:, :, i]`, `x[..., i]` on more than two dims and `x.select(-1, i)` were not
column picks, so every attribute table read "the ids of items" and all of them formed one feature
group (one tower for what are F features).
Expected: each pick along a dim past the columns is a feature of its own, `items[:,:,i]`, with its
own group; the rewrite splits them over towers and stays exact.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import prepare, run_alone

import dmt_compile
from dmt_compile.capture.capture import capture
from dmt_compile.passes.base import PassContext
from dmt_compile.topo import as_topology
from dmt_compile.ir.detection import Detection
from dmt_compile.passes.detect import Detect


class PositionFields(nn.Module):
    """Item ids `[B, L]` and two attributes of each position `[B, L, 2]`, summed per position and pooled."""

    def __init__(self, spelling: str):
        super().__init__()
        self.spelling = spelling
        self.item = nn.Embedding(10, 4)
        self.attrs = nn.ModuleList(nn.Embedding(7, 4) for _ in range(2))
        self.top = nn.Linear(4, 1)

    def _pick(self, items, i):
        if self.spelling == "ellipsis":
            return items[..., i]
        if self.spelling == "select":
            return items.select(-1, i)
        return items[:, :, i]

    def forward(self, seq, items):
        e = self.item(seq) + sum(t(self._pick(items, i)) for i, t in enumerate(self.attrs))
        return self.top(e.mean(1))


def _inputs(batch: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 10, (batch, 5), generator=g), torch.randint(0, 7, (batch, 5, 2), generator=g)


@pytest.mark.parametrize("path", ["fx", "export"])
@pytest.mark.parametrize("spelling", ["slices", "ellipsis", "select"])
def test_picks_along_the_last_dim_of_a_sequence_are_features(spelling, path):
    if path == "export":  # the export path records the picks as `select(2, i)`
        cap = capture(PositionFields(spelling), _inputs(), paths=("export",))
        gm, ctx = cap.gm, PassContext(as_topology("2x2"), cap.spec, cap.flat_inputs, cap.reference_output)
    else:
        gm, ctx = prepare(PositionFields(spelling), _inputs())
    run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    assert [lk.features for lk in det.lookups] == [("seq",), ("items[:,:,0]",), ("items[:,:,1]",)]
    assert len(det.groups) == 3 and not det.groups[1].reasons and not det.groups[2].reasons


def test_position_fields_split_over_towers_exactly():
    model = PositionFields("slices").eval()
    dmt = dmt_compile.transform(model, "2x2", _inputs()).eval()
    assert dmt.plan.num_towers == 2 and len(dmt.detection.groups) == 3
    with torch.no_grad():
        for batch, seed in ((6, 0), (3, 1)):
            torch.testing.assert_close(dmt(*_inputs(batch, seed)), model(*_inputs(batch, seed)), rtol=0, atol=0)
