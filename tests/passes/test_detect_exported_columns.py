"""detect: per-field column picks spelled `x[:, i, ...]`, also behind an exported `torch.as_tensor` cast.

Before: mlgb-style input layers cast the id matrix with `torch.as_tensor(x, dtype=torch.int32,
device=torch.device("cpu"))` (fx could not trace it; the export path captures it as `aten.to`) and
pick fields as `x[:, i, ...]` (exported as a whole-tensor `x[(slice(None),)]` before `select(1, i)`).
Neither step was seen through, so all tables served one feature `x` and the plan had one tower.
Expected: on the fx and the export path each column is one feature, `x[:,i]`, as for `x[:, i]`.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import ids, prepare, run_alone

from dmt_compile.capture.capture import capture
from dmt_compile.ir.detection import Detection
from dmt_compile.passes.base import PassContext
from dmt_compile.topo import as_topology
from dmt_compile.passes.detect import Detect


class TrailingEllipsisColumns(nn.Module):
    def __init__(self, cast: str = ""):
        super().__init__()
        self.cast = cast
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))

    def forward(self, x):
        if self.cast == "traced":  # fx records torch.as_tensor when an argument is a proxy
            x = torch.as_tensor(x, dtype=torch.int32, device=x.device)
        elif self.cast == "exported":  # all-constant arguments: fx fails, the export path gives aten.to
            x = torch.as_tensor(x, dtype=torch.int32, device=torch.device("cpu"))
        e = [t(x[:, i, ...]) for i, t in enumerate(self.tables)]
        return torch.cat(e, 1).sum(1, keepdim=True)


def _features(model):
    x = (ids(fields=3),)
    if model.cast == "exported":
        cap = capture(model, x, paths=("export",))
        gm, ctx = cap.gm, PassContext(as_topology("2x2"), cap.spec, cap.flat_inputs, cap.reference_output)
        assert any(getattr(n.target, "overloadpacket", None) is torch.ops.aten.to for n in gm.graph.nodes)
    else:
        gm, ctx = prepare(model, x)
    run_alone(Detect(), gm, ctx)
    det = ctx.get(Detection)
    return [lk.features for lk in det.lookups], len(det.groups)


@pytest.mark.parametrize("cast", ["", "traced", "exported"])
def test_trailing_ellipsis_column_picks_are_columns(cast):
    assert _features(TrailingEllipsisColumns(cast)) == ([("x[:,0]",), ("x[:,1]",), ("x[:,2]",)], 3)
