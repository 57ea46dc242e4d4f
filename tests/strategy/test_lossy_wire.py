"""Lossy wires (bf16, fp16) in strategy="auto": never chosen unchecked, judged by a quality check that trains
them with the exchanges rounded as the wire rounds them (`runtime.wire_codec.emulate_wire`), and built with
their wire when chosen."""
from __future__ import annotations

import pytest
import torch

import dmt_compile
from dmt_compile import choose_strategy
from dmt_compile.api import run_passes, transform
from dmt_compile.api.auto import _builder
from dmt_compile.runtime.wire_codec import emulate_wire
from dmt_compile.strategy import Candidate
from dmt_compile.topo import as_topology
from fakes import FixedQuality, TablePredictor
from helpers import labelled_dlrm_batches, load_model


@pytest.fixture(scope="module")
def dlrm():
    return load_model("example:dlrm")


def _choose(dlrm, **kw):
    model, inputs = dlrm
    return choose_strategy(model, "h100:16", inputs, log=None, **kw)


def test_unchecked_lossy_wires_are_never_chosen(dlrm):
    choice = _choose(dlrm, predictor=TablePredictor({"flat/bf16": 0.1, "sptt/identity/fp16": 0.2, "flat/fp32": 0.9}))
    assert choice.chosen == "flat/fp32" and not choice.quality_checked
    assert "a bf16 wire rounds the exchanged activations" in choice.row("flat/bf16").dropped
    assert "a fp16 wire rounds" in choice.row("sptt/identity/fp16").dropped
    assert not choice.row("flat/bf16").candidate.exact


def test_a_measured_lossy_wire_within_budget_can_be_chosen(dlrm):
    fast = {"flat/bf16": 0.1, "sptt/identity/bf16": 0.2, "flat/fp32": 0.9, "sptt/identity/fp32": 0.95}
    check = FixedQuality({"flat/bf16": (-0.003, 0.001), "sptt/identity/bf16": (-0.0001, 0.0005)})
    choice = _choose(dlrm, predictor=TablePredictor(fast), quality_check=check, quality_budget=0.002)
    assert check.asked[:2] == ["flat/bf16", "sptt/identity/bf16"]
    assert "breaks the budget" in choice.row("flat/bf16").dropped
    assert choice.chosen == "sptt/identity/bf16"


def test_emulate_wire_rounds_lookups_and_tower_outputs_both_ways():
    model = torch.nn.Module()
    model.bag = torch.nn.EmbeddingBag(10, 4, mode="sum")
    model.tower0_tm = torch.nn.Linear(4, 4)
    emulate_wire(model, "fp16")
    ids = torch.tensor([[1, 2], [3, 4]])
    looked = model.bag(ids)
    assert torch.equal(looked, looked.detach().half().float())
    out = model.tower0_tm(looked)
    assert torch.equal(out, out.detach().half().float())
    (out * (1 / 3)).sum().backward()  # the gradient crossing the wire is rounded too
    g = model.bag.weight.grad[1]
    assert torch.equal(g, g.half().float())
    plain = torch.nn.Embedding(4, 4)
    assert emulate_wire(plain, "fp32") is plain and not plain._forward_hooks


def test_the_paired_training_builder_rounds_what_the_candidate_exchanges(dlrm):
    model, inputs = dlrm
    topo = as_topology("h100:16")
    build = _builder(transform, topo, inputs, {})
    flat = Candidate("flat", feed="flat", wire_dtype="bf16")
    built = build(flat, load_model("example:dlrm")[0])
    seen = []
    for m in built.modules():
        if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
            m.register_forward_hook(lambda _m, _i, out: seen.append(out))
    built(*inputs)
    assert seen and all(torch.equal(o, o.detach().bfloat16().float()) for o in seen)
    ref = dmt_compile.transform(model, "1x16", inputs, num_towers=1)
    assert not torch.equal(built(*inputs), ref(*inputs))  # the rounding reaches the output




def test_paired_training_measures_a_lossy_wire_and_builds_it(dlrm):
    model, inputs = dlrm
    fast = {"sptt/identity/bf16": 0.1, "flat/fp32": 0.9, "sptt/identity/fp32": 0.95}
    dmt = dmt_compile.transform(model, "h100:16", inputs, strategy="auto", quality_data=labelled_dlrm_batches(30),
                                predictor=TablePredictor(fast), quality_budget=1.0)
    choice = dmt.plan.auto
    q = choice.row("sptt/identity/bf16").quality
    assert q is not None and q.seeds == 3
    assert q.delta_log_loss != 0.0  # trained through the rounding: not the exact identity model
    assert choice.chosen == "sptt/identity/bf16" and dmt.wire_dtype == "bf16"
