"""The choice: deterministic under a fake predictor, flips with the wire share, respects the quality
budget and the pins, flags uncertainty, and serialises to the documented JSON schema."""
from __future__ import annotations

import json

import pytest

from dmt_compile import choose_strategy
from dmt_compile.strategy import Pins, choose_for_graph
from dmt_compile.strategy.explain import SCHEMA
from fakes import FixedQuality, TablePredictor, WireSharePredictor
from helpers import load_model


@pytest.fixture(scope="module")
def dlrm():
    return load_model("example:dlrm")


def _choose(dlrm, **kw):
    model, inputs = dlrm
    kw.setdefault("log", None)
    return choose_strategy(model, "h100:16", inputs, **kw)


def test_choice_flips_with_the_wire_share(dlrm):
    network = _choose(dlrm, predictor=WireSharePredictor(seconds_per_byte=1e-6))
    compute = _choose(dlrm, predictor=WireSharePredictor(seconds_per_byte=1e-15, seconds_per_flop=1e-9))
    # network-bound: the most compressing candidate the shipped quality evidence admits (dot, c <= 4)
    assert network.candidate.tower_module == "dot" and network.candidate.compression <= 4
    assert network.candidate.effective_compression == max(r.candidate.effective_compression for r in network.rows
                                                          if not r.dropped)
    # compute-bound: no Tower Module (flat or identity, whichever sends fewer bytes)
    assert compute.candidate.exact
    again = _choose(dlrm, predictor=WireSharePredictor(seconds_per_byte=1e-6))
    assert again.chosen == network.chosen and again.to_json() == network.to_json()  # deterministic


def test_without_quality_data_only_exact_or_measured_candidates_are_chosen(dlrm):
    """Unchecked, a compressing candidate needs the quality harness's measurement of its Tower Module
    and feed at a compression at least as high, within the budget on both data sets."""
    fast = {"sptt/linear/c=4/decoder/fp32": 0.1, "sptt/cross/c=4/hierarchical/fp32": 0.2,
            "sptt/dot/c=6/hierarchical/fp32": 0.3, "sptt/dot/c=4/hierarchical/bf16": 0.35,
            "sptt/dot/c=4/hierarchical/fp32": 0.5, "flat/fp32": 0.9}
    choice = _choose(dlrm, predictor=TablePredictor(fast))
    assert choice.chosen == "sptt/dot/c=4/hierarchical/fp32" and not choice.quality_checked
    linear = choice.row("sptt/linear/c=4/decoder/fp32").dropped
    assert "measured linear with decoder feed at c = 4 at ΔAUC -0.0118 ± 0.0085 on planted" in linear
    assert "ΔAUC -0.0102 ± 0.0077 on planted" in choice.row("sptt/cross/c=4/hierarchical/fp32").dropped
    assert "no shipped measurement of dot with hierarchical feed at c ≥ 6" in \
        choice.row("sptt/dot/c=6/hierarchical/fp32").dropped
    assert "bf16 wire rounds" in choice.row("sptt/dot/c=4/hierarchical/bf16").dropped
    assert not choice.row("sptt/dot/c=2/hierarchical/fp32").dropped  # less compression than measured
    assert "quality was not checked" in str(choice)


def test_quality_budget_drops_candidates_whose_lower_bound_breaks_it(dlrm):
    fast = {"sptt/dot/c=4/hierarchical/fp32": 0.1, "sptt/wukong/c=4/hierarchical/fp32": 0.2,
            "sptt/cross/c=4/hierarchical/fp32": 0.3, "flat/fp32": 0.9, "sptt/identity/fp32": 0.95}
    check = FixedQuality({"sptt/dot/c=4/hierarchical/fp32": (-0.0015, 0.001),  # lower bound -0.0025 < -0.002
                          "sptt/wukong/c=4/hierarchical/fp32": (-0.0005, 0.001)})
    choice = _choose(dlrm, predictor=TablePredictor(fast), quality_check=check, quality_budget=0.002)
    assert check.asked == ["sptt/dot/c=4/hierarchical/fp32", "sptt/wukong/c=4/hierarchical/fp32",
                           "sptt/cross/c=4/hierarchical/fp32"]  # the shortlist: fastest 3 faster than exact ones
    assert "breaks the budget" in choice.row("sptt/dot/c=4/hierarchical/fp32").dropped
    assert choice.chosen == "sptt/wukong/c=4/hierarchical/fp32" and choice.quality_checked
    assert choice.row(choice.chosen).quality.delta_auc == -0.0005
    assert choice.runner_up == "sptt/cross/c=4/hierarchical/fp32"
    assert "not shortlisted" in choice.row("sptt/linear/c=4/hierarchical/fp32").dropped
    assert "not shortlisted" in choice.row("sptt/linear/c=4/decoder/fp32").dropped  # measured past the budget
    assert not choice.row("sptt/dot/c=4/decoder/fp32").dropped  # measured within it: kept unmeasured here
    loose = _choose(dlrm, predictor=TablePredictor(fast), quality_check=FixedQuality(dict(check.values)),
                    quality_budget=0.01)
    assert loose.chosen == "sptt/dot/c=4/hierarchical/fp32"


def test_pins_constrain_the_choice(dlrm):
    pred = WireSharePredictor(seconds_per_byte=1e-6)
    choice = _choose(dlrm, predictor=pred, pins=Pins(tower_module="dot"))
    assert {r.candidate.tower_module for r in choice.rows} == {"dot"} and choice.candidate.tower_module == "dot"
    choice = _choose(dlrm, predictor=pred, pins=Pins(compression=2.0))
    assert choice.candidate.compression == 2.0


def test_uncertain_when_the_predictor_error_exceeds_the_margin(dlrm):
    table = {"sptt/identity/fp32": 1.00, "sptt/dot/c=4/decoder/fp32": 1.04}  # flat: 10 s, far behind
    sure = _choose(dlrm, predictor=TablePredictor(table, default_s=10.0, rel_error=0.01))
    unsure = _choose(dlrm, predictor=TablePredictor(table, default_s=10.0, rel_error=0.1))
    for c in (sure, unsure):
        assert c.chosen == "sptt/identity/fp32" and c.runner_up == "sptt/dot/c=4/decoder/fp32"
        assert c.margin == pytest.approx(0.04)
    assert not sure.uncertain and unsure.uncertain
    assert "uncertain" in str(unsure) and "uncertain" not in str(sure).split("\n")[1]


def test_flat_is_kept_when_the_rewrite_wins_by_less_than_the_predictor_error(dlrm):
    """A rewrite predicted 4 % faster than flat with a ±10 % predictor is no evidence: flat, and why."""
    table = {"sptt/identity/fp32": 1.00, "flat/fp32": 1.04}
    sure = _choose(dlrm, predictor=TablePredictor(table, default_s=10.0, rel_error=0.01))
    unsure = _choose(dlrm, predictor=TablePredictor(table, default_s=10.0, rel_error=0.1))
    assert sure.chosen == "sptt/identity/fp32" and not any("kept flat" in n for n in sure.notes)
    assert unsure.chosen == "flat/fp32" and unsure.runner_up == "sptt/identity/fp32" and unsure.uncertain
    assert unsure.margin == pytest.approx(-0.04 / 1.04)
    text = str(unsure)
    assert "note: kept flat: sptt/identity/fp32 is predicted 4.0 % faster, within the predictor's error (±10 %)" in text
    assert "margin to runner-up sptt/identity/fp32: -3.8 %" in text
    assert json.loads(unsure.to_json())["chosen"] == "flat/fp32"


def test_json_schema(dlrm):
    choice = _choose(dlrm, predictor=WireSharePredictor(seconds_per_byte=1e-9), batch_per_rank=512)
    doc = json.loads(choice.to_json())
    assert doc["schema"] == SCHEMA and doc["batch_per_rank"] == 512 and doc["quality_checked"] is False
    assert set(doc) >= {"topology", "predictor", "quality_budget", "chosen", "runner_up", "margin", "uncertain",
                        "candidates", "refused", "notes"}
    row_keys = {"key", "strategy", "tower_module", "compression", "effective_compression", "feed", "wire_dtype",
                "exact", "predicted_step_s", "rel_error", "cross_host_bytes", "compute_s", "comm_s", "delta_auc",
                "auc_spread", "delta_log_loss", "dropped", "status", "towers"}
    assert all(row_keys <= set(r) for r in doc["candidates"])
    assert [r["status"] for r in doc["candidates"]].count("CHOSEN") == 1
    chosen = next(r for r in doc["candidates"] if r["status"] == "CHOSEN")
    assert chosen["key"] == doc["chosen"] and chosen["dropped"] is None
    steps = [r["predicted_step_s"] for r in doc["candidates"]]
    assert steps == sorted(steps)
    assert all({"what", "reason"} == set(r) for r in doc["refused"])


def test_cost_model_predictor_prices_every_candidate(dlrm):
    choice = _choose(dlrm, batch_per_rank=256)  # the default predictor: today's cost model
    flat = choice.row("flat/fp32").prediction
    dot16 = choice.row("sptt/dot/c=16/decoder/fp32").prediction
    assert flat.seconds > 0 and flat.compute_s > 0  # h100 has a flop rate: compute is priced
    assert dot16.cross_host_bytes < choice.row("sptt/identity/fp32").prediction.cross_host_bytes
    assert all(r.prediction.rel_error == 0.25 for r in choice.rows)


def test_a_topology_without_links_is_a_typed_error(dlrm):
    from dmt_compile.errors import CostModelError

    model, inputs = dlrm
    with pytest.raises(CostModelError, match="cannot price"):
        choose_strategy(model, "2x4", inputs, log=None)
