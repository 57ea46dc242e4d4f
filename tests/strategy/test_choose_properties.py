"""Properties of `choose` over generated candidate sets (hypothesis): the chosen candidate is the fastest
that survives (or flat, when the fastest beats flat by less than the predictor's error), exact ones always
survive, the margin and the uncertainty flag follow their definitions."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmt_compile.strategy import Candidate, Prediction, QualityEstimate, choose
from dmt_compile.strategy.quality_evidence import shipped_verdict

FEEDS = ("flat", "identity", "direct", "hierarchical", "decoder")


@st.composite
def candidate_sets(draw):
    n = draw(st.integers(2, 12))
    cands, preds, quality = [], {}, {}
    for i in range(n):
        feed = FEEDS[0] if i == 0 else draw(st.sampled_from(FEEDS[1:]))
        c = Candidate("flat" if feed == "flat" else "sptt", "identity" if feed in ("flat", "identity") else "dot",
                      float(i + 1) if feed not in ("flat", "identity") else 1.0, feed)
        if c.key in preds:
            continue
        cands.append(c)
        preds[c.key] = Prediction(draw(st.floats(1e-4, 1.0)), draw(st.floats(0.0, 0.5)), 0.0, 0.0, 0.0)
        if draw(st.booleans()):
            quality[c.key] = QualityEstimate(draw(st.floats(-0.01, 0.01)), draw(st.floats(0.0, 0.005)), 0.0, 0.0, 3,
                                             "gen")
    checked = draw(st.booleans())
    return cands, preds, (quality if checked else None), draw(st.floats(0.0, 0.01))


@settings(max_examples=200, deadline=None)
@given(candidate_sets(), st.booleans())
def test_choice_is_the_fastest_survivor(case, keep_flat):
    cands, preds, quality, budget = case
    ch = choose(cands, preds, topology="t", batch_per_rank=1, predictor="gen", quality=quality, quality_budget=budget,
                keep_flat_within_error=keep_flat)
    secs = [r.prediction.seconds for r in ch.rows]
    assert secs == sorted(secs) and {r.candidate.key for r in ch.rows} == {c.key for c in cands}
    alive = [r for r in ch.rows if not r.dropped]
    assert all(not r.dropped for r in ch.rows if r.candidate.exact)
    flat = next(r for r in alive if r.candidate.strategy == "flat")  # exact: always survives
    fastest = alive[0].prediction
    gain = (flat.prediction.seconds - fastest.seconds) / fastest.seconds
    if keep_flat and alive[0] is not flat and gain < max(fastest.rel_error, flat.prediction.rel_error):
        assert ch.chosen == flat.candidate.key and ch.runner_up == alive[0].candidate.key
        assert ch.margin == pytest.approx(-gain / (1 + gain)) and ch.uncertain
        assert any(n.startswith(f"kept flat: {alive[0].candidate.key} is predicted") for n in ch.notes)
        return
    assert ch.chosen == alive[0].candidate.key
    assert not any(n.startswith("kept flat") for n in ch.notes)
    for r in ch.rows:
        q = r.quality
        if q is not None and not r.candidate.exact:
            assert bool(r.dropped) == (q.auc_lower_bound < -budget)
        if q is None and not r.candidate.exact:
            assert bool(r.dropped) == bool(shipped_verdict(r.candidate, budget))
    if len(alive) > 1:
        best, runner = alive[0].prediction, alive[1].prediction
        assert ch.runner_up == alive[1].candidate.key
        assert ch.margin == pytest.approx((runner.seconds - best.seconds) / best.seconds)
        assert ch.uncertain == (ch.margin < max(best.rel_error, runner.rel_error))
    else:
        assert ch.runner_up is None and not ch.uncertain
