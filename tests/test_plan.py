"""The default tower plan: groups never split, pins honoured, balanced, deterministic."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import dmt_compile
from dmt_compile.errors import PlanError
from helpers import load_model


class Sized(nn.Module):
    """One table per feature with per-feature dims; features i and i+1 share a table when asked."""

    def __init__(self, dims, shared):
        super().__init__()
        self.dims = dims
        self.shared = set(shared)
        self.tables = nn.ModuleList([nn.Embedding(20, d) for d in dims])

    def forward(self, x):
        outs = []
        for i in range(len(self.dims)):
            j = i
            while j in self.shared:  # a shared feature uses the table of the feature before it
                j -= 1
            outs.append(self.tables[j](x[:, i]))
        return torch.cat(outs, dim=1).sum(1, keepdim=True)


def _build(dims, shared):
    dims = list(dims)
    for i in sorted(shared):
        dims[i] = dims[i - 1]
    model = Sized(dims, shared)
    return model, (torch.randint(0, 20, (4, len(dims))),)


@settings(max_examples=25, deadline=None)
@given(
    dims=st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=2, max_size=9),
    towers=st.integers(1, 4),
    data=st.data(),
)
def test_plan_properties(dims, towers, data):
    shared = data.draw(st.sets(st.integers(1, len(dims) - 1), max_size=2))
    model, inputs = _build(dims, shared)
    groups = len(dims) - len(shared)
    towers = min(towers, groups)
    names = [f"x[:,{i}]" for i in range(len(dims))]
    pin_feature = data.draw(st.sampled_from(names))
    pin_tower = data.draw(st.integers(0, towers - 1))
    plan = dmt_compile.transform(model, "4x1", inputs, num_towers=towers, towers={pin_feature: pin_tower}).plan
    # every feature in exactly one tower
    flat = [f for t in plan.towers for f in t]
    assert sorted(flat) == sorted(names)
    # the pin is honoured and shared tables sit together
    assert plan.tower_of(pin_feature) == pin_tower
    for i in shared:
        assert plan.tower_of(names[i]) == plan.tower_of(names[i - 1])
    # every tower is used
    assert all(len(t) > 0 for t in plan.towers)
    # deterministic
    again = dmt_compile.transform(model, "4x1", inputs, num_towers=towers, towers={pin_feature: pin_tower}).plan
    assert again.towers == plan.towers


@settings(max_examples=25, deadline=None)
@given(dims=st.lists(st.sampled_from([1, 2, 4, 8, 16]), min_size=2, max_size=10), towers=st.integers(1, 4))
def test_balance_bound_without_pins(dims, towers):
    towers = min(towers, len(dims))
    model, inputs = _build(dims, set())
    plan = dmt_compile.transform(model, "4x1", inputs, num_towers=towers).plan
    loads = [d.width_in for d in plan.details]
    # LPT greedy: the heaviest tower exceeds the lightest by at most the largest group
    assert max(loads) - min(loads) <= max(dims)


def test_shared_table_and_shared_ids_are_explained():
    model, inputs = load_model("zoo:shared_fibinet")
    plan = dmt_compile.transform(model, "2x2", inputs).plan
    assert plan.tower_of("user_id") == plan.tower_of("target_user_id")
    assert plan.tower_of("item_id") == plan.tower_of("last_item_id")
    assert any("shared" in note for note in plan.notes)


def test_unsplittable_offset_table_is_one_tower_and_explained():
    model, inputs = load_model("zoo:big_table_offsets_input")
    dmt = dmt_compile.transform(model, "2x4", inputs)
    assert dmt.plan.num_towers == 1
    assert any("cannot be split" in note for note in dmt.plan.notes)
    model.eval()
    dmt.eval()
    assert torch.equal(dmt(*inputs), model(*inputs))


def test_list_pins_define_towers():
    model, inputs = load_model("example:dlrm")
    a = [f"C{i}" for i in range(1, 14)]
    b = [f"C{i}" for i in range(14, 27)]
    plan = dmt_compile.transform(model, "2x2", inputs, towers=[a, b]).plan
    assert plan.towers == (tuple(a), tuple(b))
    assert plan.strategy == "pinned"


def test_more_logical_towers_than_hosts_wrap_around():
    model, inputs = load_model("example:dlrm")
    plan = dmt_compile.transform(model, "2x2", inputs, num_towers=4).plan
    assert [d.host for d in plan.details] == [0, 1, 0, 1]


def test_plan_is_frozen_and_printable():
    model, inputs = load_model("example:dlrm")
    plan = dmt_compile.transform(model, "2x2", inputs).plan
    with pytest.raises(Exception):
        plan.strategy = "x"  # type: ignore[misc]
    assert "TowerPlan" in str(plan) and plan.to_json().startswith("{")


def test_every_pin_error_is_a_plan_error():
    model, inputs = load_model("example:dlrm")
    for pins in ({"C1": -1}, [["C1"], "C2"], 5):
        with pytest.raises(PlanError):
            dmt_compile.transform(model, "2x2", inputs, towers=pins)
