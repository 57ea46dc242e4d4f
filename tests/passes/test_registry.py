"""The pass registry and pipeline specs (`dmt-compile dump --passes`)."""
from __future__ import annotations

import dataclasses
import io
import os

import pytest

from dmt_compile.errors import InputError
from dmt_compile.passes import PASSES, format_pipeline, get_pass, parse_pipeline
from dmt_compile.passes.base import Pass
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.tools.cli import main


def test_every_registered_pass_is_a_frozen_dataclass_named_like_its_key():
    for name in PASSES:
        cls = get_pass(name)
        assert issubclass(cls, Pass) and cls.name == name
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen


def test_spec_round_trip_with_typed_options():
    passes = parse_pipeline("detect, plan-towers{num-towers=2,partitioner=learned,seed=3},plan-feed{compression=4}")
    assert passes[1] == PlanTowers(num_towers=2, partitioner="learned", seed=3)
    assert passes[2].compression == 4.0
    assert format_pipeline(passes) == "detect,plan-towers{num-towers=2,partitioner=learned,seed=3},plan-feed{compression=4.0}"


@pytest.mark.parametrize("spec, message", [
    ("detect,frobnicate", "unknown pass 'frobnicate'"),
    ("plan-towers{colour=red}", "has no option 'colour'"),
    ("plan-towers{num-towers=two}", "'two' is not a valid int"),
    ("plan-towers{towers=x}", "cannot be set from a pipeline spec"),
    ("", "empty pipeline spec"),
])
def test_bad_specs_are_typed_errors(spec, message):
    with pytest.raises(InputError, match=message):
        parse_pipeline(spec)


def test_cli_runs_a_partial_pipeline():
    out = io.StringIO()
    dlrm = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "dlrm.py") + ":factory"
    assert main(["dump", dlrm, "--topology", "2x2", "--passes", "split-collections,detect,"
                 "plan-towers{num-towers=2}"], stdout=out) == 0
    text = out.getvalue()
    assert text.startswith("pipeline: split-collections,detect,plan-towers{num-towers=2}")
    assert "TowerPlan: 2 towers" in text and "ids_exchange" not in text
