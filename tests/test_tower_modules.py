"""Compressing Tower Modules: direct feed when the interaction allows it, hierarchical feed when the layers
after it can be rebuilt for fewer embeddings, decoders otherwise."""
from __future__ import annotations

import pytest
import torch

import dmt_compile
from dmt_compile.errors import TowerModuleError
from dmt_compile.tower_modules import compressed_count
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


def test_auto_keeps_decoders_for_the_linear_tower_module_and_says_why():
    model, inputs = load_model("example:dcn_v2")
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)
    assert {d.feed for d in dmt.plan.details} == {"decoder"} and not dmt.plan.rebuilt
    note = next(n for n in dmt.plan.notes if "hierarchical feed is possible" in n)
    assert "computes no interaction inside the tower" in note and "feed='hierarchical' forces it" in note
    forced = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4, feed="hierarchical")
    assert {d.feed for d in forced.plan.details} == {"hierarchical"}


def test_auto_falls_back_to_decoder_when_nothing_can_be_rebuilt_and_says_why():
    model, inputs = load_model("zoo:dcnv2_split_loop")  # loops over a specialised number of chunks
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="dot", compression=2)
    assert {d.feed for d in dmt.plan.details} == {"decoder"}
    assert any("cannot feed the interaction directly" in n and "fewer embeddings" in n for n in dmt.plan.notes), dmt.plan.notes


def test_identity_tower_module_is_exact_for_polymorphic_models():
    model, inputs = fm_factory()
    model.eval()
    dmt = dmt_compile.transform(model, "2x4", inputs).eval()
    assert max_diff(dmt(*inputs), model(*inputs)) == 0.0


@pytest.mark.parametrize("tm", ["linear", "dot"])
def test_compression_ratio_shrinks_tower_outputs(tm):
    model, inputs = load_model("example:dlrm")
    widths = {}
    for c in (2, 4, 13):
        dmt = dmt_compile.transform(model, "2x2", inputs, tower_module=tm, compression=c)
        widths[c] = sum(d.width_out for d in dmt.plan.details)
        for d in dmt.plan.details:  # decoder: ⌈width/c⌉; hierarchical: whole 16-wide embeddings, ratio closest to c
            hier = compressed_count(len(d.features), c) * 16
            assert d.width_out == (-(-d.width_in // c) if d.feed == "decoder" else hier)
    assert widths[2] > widths[4] > widths[13]


def _flops(model, inputs) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops()


def test_hierarchical_dlrm_rebuilds_the_top_mlp_and_cuts_compute():
    model, inputs = load_model("example:dlrm", batch_size=64)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="dot", compression=4)
    assert {d.feed for d in dmt.plan.details} == {"hierarchical"}
    rebuilt = {r.target: r for r in dmt.plan.rebuilt}
    top = rebuilt["top_mlp.0"]  # 27 vectors -> 1 dense + 2 towers x 3 (13/3 is closest to 4) = 7: 16 + 21 inputs
    assert (top.old_shape, top.new_shape, top.init) == ((64, 16 + 351), (64, 16 + 21), "copy")
    assert sorted(r.kind for r in rebuilt.values()) == ["linear", "triu_indices", "triu_indices"]
    gm = dmt.graph_module
    assert gm.get_submodule("top_mlp.0").weight.shape == (64, 37)
    text = str(dmt.plan)
    assert "rebuilt for the compressed width: top_mlp.0 (linear 64x367 -> 64x37" in text and "kept the trained values" in text
    assert '"rebuilt"' in dmt.dump("json") and "top_mlp.0" in dmt.dump("json")
    # the global interaction and the top MLP now work on 9 vectors instead of 27: less compute than the
    # decoder variant (which rebuilds all 27), and less than the flat model
    decoder = dmt_compile.transform(model, "2x2", inputs, tower_module="dot", compression=4, feed="decoder")
    flat, hier, dec = _flops(model, inputs), _flops(dmt, inputs), _flops(decoder, inputs)
    assert hier < flat < dec, (hier, flat, dec)
    _, inputs5 = load_model("example:dlrm", batch_size=5, seed=3)
    assert dmt(*inputs5).shape == (5, 1)
    losses = train_steps(dmt, inputs, steps=8)
    assert losses[-1] < losses[0]


def test_hierarchical_dcn_rebuilds_cross_layers_in_both_dims():
    model, inputs = load_model("example:dcn_v2")
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="cross", compression=4)
    assert {d.feed for d in dmt.plan.details} == {"hierarchical"}
    w = 13 + 2 * 26  # dense + two towers of 13 features x 8 compressed 4x
    shapes = {r.target: r.new_shape for r in dmt.plan.rebuilt}
    assert shapes == {"cross_layers.0.linear": (w, w), "cross_layers.1.linear": (w, w),
                      "cross_layers.2.linear": (w, w), "mlp.0": (128, w)}
    orig = model.cross_layers[0].linear
    new = dmt.graph_module.get_submodule("cross_layers.0.linear")
    assert torch.equal(new.weight[:13, :13], orig.weight[:13, :13]) and torch.equal(new.bias[:13], orig.bias[:13])
    losses = train_steps(dmt, inputs, steps=8)
    assert losses[-1] < losses[0]


def test_decoder_feed_keeps_every_pretrained_layer():
    """Users who must keep a pretrained model's layers force decoders: nothing outside the towers changes."""
    model, inputs = load_model("example:dlrm")
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="dot", compression=4, feed="decoder")
    assert not dmt.plan.rebuilt and {d.feed for d in dmt.plan.details} == {"decoder"}
    after = dmt.graph_module.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(after[name], value), name


@pytest.mark.distributed
def test_hierarchical_feed_runs_sharded_exactly():
    """gloo, 2 hosts x 2 ranks: the sharded hierarchical model matches the single-process one (forward,
    gradients, parameters after a step), rebuilt layers and recomputed index buffers included."""
    import os

    from conftest import ROOT
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.tools.verify import VerifyOptions, verify_worker
    from dmt_compile.topo import Topology

    for spec, tm in ((f"{ROOT}/examples/dlrm.py:factory", "dot"), (f"{ROOT}/examples/dcn_v2.py:factory", "cross")):
        results = launch_local(verify_worker, Topology(2, 2), args=(VerifyOptions(spec, "2x2", tm, 4),),
                               timeout_s=300, env={"PYTHONPATH": ROOT})
        for r in results:
            assert r["output"] <= 1e-5 and r["grad"] <= 1e-5 and r["param"] <= 1e-5, (os.path.basename(spec), r)
            assert r["params_checked"] > 0 and r["grad_mismatch"] == []
