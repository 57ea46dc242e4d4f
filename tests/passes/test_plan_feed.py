"""plan-feed alone: identity, direct feed and decoders decided before any graph change."""
from __future__ import annotations

import pytest

from harness import FourFields, TwoTables, compact, ids, prepare, run_alone

from dmt_compile.errors import TowerModuleError
from dmt_compile.ir.feed import FeedPlan
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.plan_feed import PlanFeed
from dmt_compile.passes.plan_towers import PlanTowers


def _planned(model, inputs, **plan):
    gm, ctx = prepare(model, inputs)
    for p in (Detect(), PlanTowers(**plan)):
        gm, _, _ = run_alone(p, gm, ctx)
    return gm, ctx


def test_identity_towers_carry_their_lookups():
    gm, ctx = _planned(FourFields(), (ids(fields=4),))
    before = compact(gm)
    gm, added, removed = run_alone(PlanFeed(), gm, ctx)
    feed = ctx.get(FeedPlan)
    assert feed.identity and [t.feed for t in feed.towers] == ["identity", "identity"]
    assert not added and not removed and compact(gm) == before


def test_polymorphic_interaction_gets_direct_feed():
    gm, ctx = _planned(FourFields(), (ids(fields=4),))
    run_alone(PlanFeed("linear", 2.0), gm, ctx)
    feed, plan = ctx.get(FeedPlan), ctx.get(TowerPlan)
    assert [(t.feed, t.pieces, t.piece_shape, t.core_width) for t in feed.towers] == [("direct", 1, (4,), 4)] * 2
    assert [d.width_out for d in plan.details] == [4, 4] and plan.tower_module == "linear"
    assert all(u.site == "stack" for t in feed.towers for u in t.uses)


def test_fixed_width_interaction_falls_back_to_decoders_and_says_why():
    gm, ctx = _planned(TwoTables(), (ids(),), num_towers=1)
    run_alone(PlanFeed("linear", 2.0), gm, ctx)
    feed = ctx.get(FeedPlan)
    assert [(t.feed, t.in_widths, t.core_width, t.shapes) for t in feed.towers] == [("decoder", (4, 4), 4, ((4,), (4,)))]
    assert "direct feed not possible" in feed.notes[0] and "fewer embeddings" in feed.notes[0]


def test_forced_direct_feed_that_cannot_work_is_a_typed_error():
    gm, ctx = _planned(TwoTables(), (ids(),), num_towers=1)
    with pytest.raises(TowerModuleError, match="direct feed of compressed towers is not possible"):
        run_alone(PlanFeed("linear", 2.0, "direct"), gm, ctx)


def test_unknown_feed_is_refused_before_running():
    gm, ctx = _planned(FourFields(), (ids(fields=4),))
    with pytest.raises(TowerModuleError, match="unknown feed"):
        run_alone(PlanFeed("linear", 2.0, "sideways"), gm, ctx)
