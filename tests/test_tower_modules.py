"""Compressing Tower Modules: direct feed when the interaction allows it, decoders otherwise."""
from __future__ import annotations

import pytest
import torch

import dmt_compile
from dmt_compile.errors import TowerModuleError
from helpers import load_model, max_diff, train_steps
from polymorphic_models import attention_factory, fm_factory


@pytest.mark.parametrize("factory", [fm_factory, attention_factory])
def test_direct_feed_on_polymorphic_interaction(factory):
    model, inputs = factory()
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=2)
    assert {d.feed for d in dmt.plan.details} == {"direct"}
    # the interaction now sees fewer embeddings: half the sparse slots per tower
    for d in dmt.plan.details:
        assert d.width_out < d.width_in
    out = dmt(*inputs)
    assert out.shape == model(*inputs).shape
    _, inputs5 = factory(batch_size=5, seed=3)
    assert dmt(*inputs5).shape == (5, 1)
    losses = train_steps(dmt, inputs, steps=8)
    assert losses[-1] < losses[0]


def test_direct_feed_keeps_wide_lookups_uncompressed():
    model, inputs = fm_factory()
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=3)
    for d in dmt.plan.details:
        n = len(d.features)  # 3 features: 3 embeddings of 8 -> 1 embedding of 8, + 3 wide dim-1 passthrough
        assert d.width_in == n * 8 + n
        assert d.width_out == 8 + n
    sites = [n for n in dmt.graph_module.graph.nodes if n.target is torch.stack]
    assert len(sites[0].args[0]) == 1 + 2  # dense embedding + one compressed embedding per tower


def test_forced_decoder_on_polymorphic_model():
    model, inputs = fm_factory()
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=2, feed="decoder")
    assert {d.feed for d in dmt.plan.details} == {"decoder"}
    assert dmt(*inputs).shape == (8, 1)


def test_forced_direct_on_non_polymorphic_model_is_a_typed_error():
    model, inputs = load_model("example:dlrm")
    with pytest.raises(TowerModuleError, match="direct feed"):
        dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=2, feed="direct")


def test_auto_falls_back_to_decoder_and_says_why():
    model, inputs = load_model("example:dcn_v2")
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)
    assert {d.feed for d in dmt.plan.details} == {"decoder"}
    assert any("direct feed not possible" in n for n in dmt.plan.notes)


def test_identity_tower_module_is_exact_for_polymorphic_models():
    model, inputs = fm_factory()
    model.eval()
    dmt = dmt_compile.transform(model, "2x4", inputs).eval()
    assert max_diff(dmt(*inputs), model(*inputs)) == 0.0


def test_compression_ratio_shrinks_tower_outputs():
    model, inputs = load_model("example:dlrm")
    widths = {}
    for c in (2, 4, 16):
        dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=c)
        widths[c] = sum(d.width_out for d in dmt.plan.details)
        total_in = sum(d.width_in for d in dmt.plan.details)
        assert widths[c] <= -(-total_in // c) + len(dmt.plan.details)
    assert widths[2] > widths[4] > widths[16]
