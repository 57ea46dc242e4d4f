"""Idioms of real CTR libraries that the fx capture paths get through (numpy, modules built in forward, ...)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.capture import capture


def _ids(batch=8, fields=4, vocab=10, seed=0):
    return torch.randint(0, vocab, (batch, fields), generator=torch.Generator().manual_seed(seed))


def _exact(model, inputs, **kw):
    dmt = dmt_compile.transform(model, "2x2", inputs, **kw)
    model.eval()
    dmt.eval()
    with torch.no_grad():
        assert torch.equal(dmt(*inputs), model(*inputs))
    return dmt


class NumpyOffsets(nn.Module):
    """pytorch-fm's FeaturesEmbedding: one table, numpy offsets added with x.new_tensor(...)."""

    def __init__(self, dims=(10, 20, 30, 40), dim=8):
        super().__init__()
        self.embedding = nn.Embedding(sum(dims), dim)
        self.offsets = np.array((0, *np.cumsum(dims)[:-1]), dtype=np.int64)
        self.fc = nn.Linear(dim, 1)

    def forward(self, x):
        x = x + x.new_tensor(self.offsets).unsqueeze(0)
        return self.fc(self.embedding(x).sum(1))


def test_numpy_offsets_are_graph_constants_and_the_table_is_split_per_field():
    dmt = _exact(NumpyOffsets(), (_ids(),))
    assert dmt.capture_report.path == "symbolic"
    assert dmt.plan.num_towers == 2 and sorted(f for t in dmt.plan.towers for f in t) == [f"x[:,{i}]" for i in range(4)]
    code = dmt.graph_module.code
    assert "new_tensor" not in code  # no copy-construct warning at every call


class NumpySlices(nn.Module):
    """DeepCTR's embedding_lookup: X[:, np.int64:np.int64] column slices."""

    def __init__(self):
        super().__init__()
        self.index = {"a": np.array([0, 1]), "b": np.array([1, 2])}
        self.tables = nn.ModuleDict({k: nn.Embedding(10, 4) for k in self.index})

    def forward(self, x):
        embs = [self.tables[k](x[:, idx[0]:idx[1]].long()) for k, idx in self.index.items()]
        return torch.cat(embs, dim=1).sum((1, 2)).unsqueeze(1)


def test_numpy_integer_slice_bounds():
    dmt = _exact(NumpySlices(), (_ids(fields=2).float(),))
    assert dmt.plan.num_towers == 2


class BuiltInForward(nn.Module):
    """DeepCTR MLR / Torch-RecHub poolings: a layer object created and called inside forward."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, x):
        e = torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)
        return nn.Softmax(dim=-1)(e.sum(1))[:, :1]


def test_a_module_built_inside_forward_is_traced_through():
    dmt = _exact(BuiltInForward(), (_ids(fields=2),))
    assert dmt.capture_report.path == "symbolic" and dmt.plan.num_towers == 2


class InPlaceUnsqueeze(nn.Module):
    """DeepCTR's OutterProductLayer: p.unsqueeze_(1) whose result is unused."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)
        self.kernel = nn.Parameter(torch.randn(3, 4))  # [B, 1, 4] * [3, 4]: wrong shape without the unsqueeze_

    def forward(self, x):
        p = self.a(x[:, 0])
        q = self.b(x[:, 1])
        p.unsqueeze_(dim=1)
        return (p * self.kernel).sum((1, 2)).unsqueeze(1) + q.sum(1, keepdim=True)


def test_an_in_place_method_with_an_unused_result_is_kept():
    _exact(InPlaceUnsqueeze(), (_ids(fields=2),))


class TracedFactory(nn.Module):
    """FuxiCTR BST: torch.zeros(x.size(0), 1) with a traced size among the varargs."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, x):
        mask = torch.zeros(x.size(0), 1)
        return self.a(x[:, 0]).sum(1, keepdim=True) + self.b(x[:, 1]).sum(1, keepdim=True) + mask


def test_tensor_factories_with_traced_sizes():
    dmt = _exact(TracedFactory(), (_ids(fields=2),))
    with torch.no_grad():
        x = _ids(batch=3, fields=2, seed=1)
        assert torch.equal(dmt(x), dmt_compile.transform(TracedFactory(), "2x2", (x,)).eval()(x).detach() * 0 + dmt(x))


class TupleIn(nn.Module):
    """A tuple input unpacked at the top of forward, and a dict output."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, inputs):
        x, dense = inputs
        logit = (self.a(x[:, 0]) * self.b(x[:, 1])).sum(1, keepdim=True) + dense
        return {"logit": logit, "prob": torch.sigmoid(logit)}


def test_tuple_input_and_dict_output():
    dmt = dmt_compile.transform(TupleIn(), "2x2", ((_ids(fields=2), torch.ones(8, 1)),))
    out = dmt((_ids(fields=2, seed=3), torch.zeros(8, 1)))
    assert set(out) == {"logit", "prob"} and out["prob"].shape == (8, 1)


def test_report_says_which_path_and_why_the_earlier_ones_failed():
    class ValueBranch(BuiltInForward):
        def forward(self, x):
            e = self.a(x[:, 0]) + self.b(x[:, 1])
            return e.sum(1, keepdim=True) if x.dim() > 1 else e

    cap = capture(ValueBranch(), (_ids(fields=2),))
    assert cap.report.path == "specialize"
    assert cap.report.attempts[0].startswith("symbolic: TraceError")
    assert "bool(gt) = True" in str(cap.report) and "static]" in str(cap.report)  # x.dim() > 1: safe to bake
