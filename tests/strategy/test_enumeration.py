"""Which candidates a model admits, which it refuses and why; the analytic widths match a real transform."""
from __future__ import annotations

import pytest
import torch

import dmt_compile
from dmt_compile.api import run_passes
from dmt_compile.errors import TowerModuleError
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.split_collections import SplitCollections
from dmt_compile.passes.split_tables import SplitTables
from dmt_compile.strategy import COMPRESSIONS, WIRE_DTYPES, Pins, enumerate_candidates
from dmt_compile.strategy.admission import gather_facts
from helpers import load_model
from polymorphic_models import fm_factory


def facts_for(model, inputs, topology):
    gm, ctx, _ = run_passes(model, topology, inputs, [SplitCollections(), SplitTables(), Detect(), PlanTowers()])
    return gather_facts(gm, ctx)


@pytest.fixture(scope="module")
def dlrm_facts():
    model, inputs = load_model("example:dlrm")
    return model, inputs, facts_for(model, inputs, "h100:16")


def test_dlrm_admits_flat_identity_hierarchical_and_decoders(dlrm_facts):
    _, _, facts = dlrm_facts
    cands, refused = enumerate_candidates(facts)
    keys = [c.key for c in cands]
    assert len(keys) == len(set(keys))
    assert keys[:2] == ["flat/fp32", "sptt/identity/fp32"]
    feeds = {c.feed for c in cands}
    assert feeds == {"flat", "identity", "hierarchical", "decoder"}  # DLRM's top MLP is not polymorphic
    assert any(r.what == "sptt/*/direct" and "not shape-polymorphic" in r.reason for r in refused)
    assert {c.tower_module for c in cands if c.feed == "decoder"} == {"linear", "dot", "cross", "wukong"}
    for c in cands:  # effective compression = elements looked up / elements leaving the towers
        out = sum(t.width_out for t in c.towers)
        assert c.effective_compression == pytest.approx(sum(t.width_in for t in c.towers) / out)
    # every configuration on every searched wire: fp32, and the lossy bf16 / fp16 twins (never exact)
    by_wire = {w: sorted(c.key.rsplit("/", 1)[0] for c in cands if c.wire_dtype == w) for w in WIRE_DTYPES}
    assert WIRE_DTYPES == ("fp32", "bf16", "fp16") and by_wire["bf16"] == by_wire["fp32"] == by_wire["fp16"]
    assert not any(c.exact or c.quality_neutral for c in cands if c.wire_dtype != "fp32")
    assert any(r.what == "wire fp8_e4m3" and "not searched" in r.reason for r in refused)
    # distinct effective compressions only: two requested c with the same tower widths are one candidate
    for tm in ("linear", "dot", "cross", "wukong"):
        for feed in ("hierarchical", "decoder"):
            shapes = [tuple(t.width_out for t in c.towers) for c in cands
                      if c.feed == feed and c.tower_module == tm and c.wire_dtype == "fp32"]
            assert len(shapes) > 1 and len(shapes) == len(set(shapes))


@pytest.mark.parametrize("key", ["sptt/dot/c=4/hierarchical/fp32", "sptt/linear/c=3/decoder/fp32",
                                 "sptt/wukong/c=12/hierarchical/fp32", "sptt/identity/fp32"])
def test_derived_widths_match_the_real_transform(dlrm_facts, key):
    model, inputs, facts = dlrm_facts
    cand = {c.key: c for c in enumerate_candidates(facts)[0]}[key]
    kwargs = cand.transform_kwargs(facts.num_hosts, facts.local_size)
    dmt = dmt_compile.transform(model, "h100:16", inputs, **kwargs)
    assert [d.width_out for d in dmt.plan.details] == [t.width_out for t in cand.towers]
    assert [d.width_in for d in dmt.plan.details] == [t.width_in for t in cand.towers]
    assert {d.feed for d in dmt.plan.details} == {cand.feed}


def test_polymorphic_model_takes_direct_feed():
    model, inputs = fm_factory()
    cands, refused = enumerate_candidates(facts_for(model, inputs, "h100:16"))
    assert "direct" in {c.feed for c in cands} and "hierarchical" not in {c.feed for c in cands}
    assert any(r.what == "sptt/*/hierarchical" for r in refused)
    direct = next(c for c in cands if c.feed == "direct" and c.tower_module == "linear")
    dmt = dmt_compile.transform(model, "h100:16", inputs, tower_module="linear", compression=direct.compression,
                                feed="direct")
    assert [d.width_out for d in dmt.plan.details] == [t.width_out for t in direct.towers]


def test_one_host_admits_only_flat(dlrm_facts):
    model, inputs, _ = dlrm_facts
    cands, refused = enumerate_candidates(facts_for(model, inputs, "h100:8"))
    assert [c.key for c in cands] == ["flat/fp32", "flat/bf16", "flat/fp16"]
    assert any(r.what == "sptt/*" and "one host" in r.reason for r in refused)


def test_unpooled_sequences_refuse_compression():
    model, inputs = load_model("zoo:torchrec_ec_sequence")  # skips without torchrec
    cands, refused = enumerate_candidates(facts_for(model, inputs, "h100:16"))
    assert {c.key for c in cands} == {f"{s}/{w}" for s in ("flat", "sptt/identity") for w in WIRE_DTYPES}
    assert any("unpooled sequences" in r.reason for r in refused)


def test_pins_constrain_the_search(dlrm_facts):
    _, _, facts = dlrm_facts
    dot = enumerate_candidates(facts, Pins(tower_module="dot"))[0]
    assert dot and {c.tower_module for c in dot} == {"dot"} and "flat" not in {c.strategy for c in dot}
    assert {c.feed for c in dot} == {"hierarchical", "decoder"} and len({c.compression for c in dot}) > 2
    c4 = enumerate_candidates(facts, Pins(compression=4.0))[0]
    assert {c.compression for c in c4} == {4.0} and len({c.tower_module for c in c4}) == 4
    dec = enumerate_candidates(facts, Pins(tower_module="cross", feed="decoder"))[0]
    assert {(c.tower_module, c.feed) for c in dec} == {("cross", "decoder")}
    assert len(dec) == len(COMPRESSIONS) * len(WIRE_DTYPES)  # 208-wide towers meet every c as decoders, per wire
    ident = enumerate_candidates(facts, Pins(tower_module="identity"))[0]
    assert [c.key for c in ident] == ["sptt/identity/fp32", "sptt/identity/bf16", "sptt/identity/fp16"]
    with pytest.raises(TowerModuleError, match="no candidate"):
        enumerate_candidates(facts, Pins(feed="direct"))  # DLRM cannot take direct feed
    bf16 = enumerate_candidates(facts, Pins(wire_dtype="bf16"))[0]
    assert bf16 and {c.wire_dtype for c in bf16} == {"bf16"} and all(c.wire_bytes == 2 for c in bf16)
    with pytest.raises(TowerModuleError, match="not searched"):
        enumerate_candidates(facts, Pins(wire_dtype="fp8_e4m3"))
