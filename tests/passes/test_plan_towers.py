"""plan-towers alone: a TowerPlan from a Detection; pins honoured; the graph is not changed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import FourFields, compact, ids, prepare, run_alone

from dmt_compile.errors import PlanError
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.plan_towers import PlanTowers


def _detected(topology="2x2"):
    gm, ctx = prepare(FourFields(), (ids(fields=4),), topology)
    gm, _, _ = run_alone(Detect(), gm, ctx)
    return gm, ctx


def test_balanced_towers_one_per_host():
    gm, ctx = _detected()
    before = compact(gm)
    gm, added, removed = run_alone(PlanTowers(), gm, ctx)
    plan = ctx.get(TowerPlan)
    assert plan.num_towers == 2 and plan.strategy == "balanced"
    assert sorted(f for t in plan.towers for f in t) == ["x[:,0]", "x[:,1]", "x[:,2]", "x[:,3]"]
    assert [d.width_in for d in plan.details] == [8, 8] and [d.host for d in plan.details] == [0, 1]
    assert all(d.width_out == d.width_in and d.feed == "identity" for d in plan.details)
    assert not added and not removed and compact(gm) == before


def test_pins_are_honoured_and_named_in_the_strategy():
    gm, ctx = _detected()
    run_alone(PlanTowers(towers={"x[:,0]": 1, "x[:,1]": 1}), gm, ctx)
    plan = ctx.get(TowerPlan)
    assert plan.tower_of("x[:,0]") == plan.tower_of("x[:,1]") == 1
    assert plan.strategy == "balanced+pins"


def test_more_towers_than_groups_is_a_typed_error():
    gm, ctx = _detected()
    with pytest.raises(PlanError, match="5 towers requested but the model has only 4"):
        run_alone(PlanTowers(num_towers=5), gm, ctx)


class TiedInputs(nn.Module):
    """Two id inputs read through one table (Item2Vec's target and context items): one feature group."""

    def __init__(self):
        super().__init__()
        self.items = nn.Embedding(10, 4)

    def forward(self, target, context):
        return (self.items(target) * self.items(context)).sum(-1)


def test_two_towers_of_one_shared_table_is_a_typed_error_naming_the_table():
    # before: the error said "1 feature group(s) (2 features; features sharing a table or ids form one
    # group)" without naming which table ties which features
    x = torch.arange(6) % 10
    gm, ctx = prepare(TiedInputs(), (x, x.flip(0)))
    run_alone(Detect(), gm, ctx)
    with pytest.raises(PlanError, match=r"only 1 feature group.*context, target: table items.weight is shared"):
        run_alone(PlanTowers(num_towers=2), gm, ctx)


def test_more_pinned_towers_than_num_towers_is_a_typed_error():
    gm, ctx = _detected()
    with pytest.raises(PlanError, match="towers lists 3 towers but num_towers is 2"):
        run_alone(PlanTowers(num_towers=2, towers=[["x[:,0]"], ["x[:,1]"], ["x[:,2]"]]), gm, ctx)


def test_needs_a_detection():
    gm, ctx = prepare(FourFields(), (ids(fields=4),))
    from dmt_compile.errors import PassError

    with pytest.raises(PassError, match="needs Detection"):
        run_alone(PlanTowers(), gm, ctx)
