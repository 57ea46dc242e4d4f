"""`transform(strategy="auto")` end to end, `dmt.plan` with the candidate table, paired training on the
user's batches, and `dmt-compile plan --strategy auto`."""
from __future__ import annotations

import io
import json

import pytest
import torch

import dmt_compile
from dmt_compile.errors import InputError
from dmt_compile.strategy import PairedTraining
from dmt_compile.tools.cli import main
from fakes import TablePredictor, WireSharePredictor
from helpers import labelled_dlrm_batches, load_model, max_diff


@pytest.fixture(scope="module")
def dlrm():
    return load_model("example:dlrm")


def test_identity_choice_is_exact(dlrm):
    model, inputs = dlrm
    dmt = dmt_compile.transform(model, "h100:16", inputs, strategy="auto",
                                predictor=TablePredictor({"sptt/identity/fp32": 0.5}))
    assert dmt.plan.auto.chosen == "sptt/identity/fp32" and dmt.plan.num_towers == 2
    model.eval(), dmt.eval()
    with torch.no_grad():
        assert max_diff(model(*inputs), dmt(*inputs)) == 0.0
    text = str(dmt.plan)
    assert "CHOSEN" in text and "strategy auto chose sptt/identity/fp32" in text
    assert json.loads(dmt.plan.to_json())["auto"]["chosen"] == "sptt/identity/fp32"


def test_flat_choice_is_one_tower_over_the_world_and_exact(dlrm):
    model, inputs = dlrm
    dmt = dmt_compile.transform(model, "h100:16", inputs, strategy="auto",
                                predictor=TablePredictor({"flat/fp32": 0.5}))
    assert dmt.plan.auto.chosen == "flat/fp32" and dmt.plan.num_towers == 1
    assert (dmt.topology.num_hosts, dmt.topology.local_size) == (1, 16)
    model.eval(), dmt.eval()
    with torch.no_grad():
        assert max_diff(model(*inputs), dmt(*inputs)) == 0.0


def test_compressing_choice_builds_what_the_table_says(dlrm):
    model, inputs = dlrm
    dmt = dmt_compile.transform(model, "h100:16", inputs, strategy="auto", tower_module="linear",
                                predictor=WireSharePredictor(seconds_per_byte=1e-6))
    cand = dmt.plan.auto.candidate
    assert cand.tower_module == "linear" and dmt.plan.tower_module == "linear"
    assert [d.width_out for d in dmt.plan.details] == [t.width_out for t in cand.towers]
    assert dmt(*inputs).shape == model(*inputs).shape


def test_paired_training_measures_the_shortlist_on_user_batches(dlrm, capsys):
    model, inputs = dlrm
    data = labelled_dlrm_batches(6)
    fast = {"sptt/dot/c=4/hierarchical/fp32": 0.1, "flat/fp32": 0.9, "sptt/identity/fp32": 0.95}
    dmt = dmt_compile.transform(model, "h100:16", inputs, strategy="auto", quality_data=data,
                                predictor=TablePredictor(fast), quality_budget=1.0)
    choice = dmt.plan.auto
    q = choice.row("sptt/dot/c=4/hierarchical/fp32").quality
    assert q is not None and q.seeds == 3 and q.data == "calibration data" and q.auc_spread >= 0
    assert choice.chosen == "sptt/dot/c=4/hierarchical/fp32"  # a budget of 1.0 AUC keeps anything
    err = capsys.readouterr().err
    assert "paired training on calibration data" in err and "steps" in err  # the cost, before it starts
    strict = dmt_compile.transform(model, "h100:16", inputs, strategy="auto", quality_data=data,
                                   predictor=TablePredictor(fast), quality_budget=0.0)
    row = strict.plan.auto.row("sptt/dot/c=4/hierarchical/fp32")
    assert (row.quality.auc_lower_bound < 0) == bool(row.dropped)


def test_paired_training_refuses_bad_batches(dlrm):
    model, inputs = dlrm
    with pytest.raises(InputError, match="at least 5"):
        PairedTraining(model, [(inputs, torch.zeros(8))], build=lambda c, m: m)
    with pytest.raises(InputError, match="not an \\(inputs, labels\\) pair"):
        PairedTraining(model, [inputs] * 5, build=lambda c, m: m)


def test_bad_strategy_and_budget_are_typed_errors(dlrm):
    model, inputs = dlrm
    with pytest.raises(InputError, match="unknown strategy"):
        dmt_compile.transform(model, "h100:16", inputs, strategy="fastest")
    with pytest.raises(InputError, match="quality_budget"):
        dmt_compile.transform(model, "h100:16", inputs, strategy="auto", quality_budget=-1)


def test_cli_plan_strategy_auto_json():
    out = io.StringIO()
    assert main(["plan", "examples/dlrm.py:factory", "--topology", "h100:16", "--strategy", "auto", "--batch", "512",
                 "--format", "json"], stdout=out) == 0
    doc = json.loads(out.getvalue())
    assert doc["auto"]["batch_per_rank"] == 512 and doc["auto"]["chosen"] in {r["key"] for r in doc["auto"]["candidates"]}
    text = io.StringIO()
    assert main(["plan", "examples/dlrm.py:factory", "--topology", "h100:16", "--strategy", "auto",
                 "--tower-module", "dot"], stdout=text) == 0
    assert "chosen: sptt/dot/" in text.getvalue() and "flat/fp32" not in text.getvalue().split("refused:")[0]


def test_cli_auto_only_options_need_strategy_auto(capsys):
    assert main(["plan", "examples/dlrm.py:factory", "--topology", "h100:16", "--batch", "512"]) == 2
    assert "only apply to --strategy auto" in capsys.readouterr().err
    assert main(["plan", "examples/dlrm.py:factory", "--topology", "h100:16", "--strategy", "auto",
                 "--calibration-data", "/nonexistent.pt"]) == 2
    assert "neither a file nor" in capsys.readouterr().err
