"""Choose: the fastest candidate within the quality budget, the margin to the runner-up, and whether
the predictor's error makes the choice uncertain. Pure: predictions and quality estimates in, a
frozen `StrategyChoice` out (rendered by `explain`).

Flat unless the rewrite is sure to pay (`keep_flat_within_error`, on by default): when the fastest
candidate beats flat by less than the predictor's error, flat is chosen — a rewrite whose predicted
gain the predictor cannot tell from its own error may as well be slower (on the emulated bench's
sweep, SPTT with identity towers predicted 4 % faster than flat ran 12–17 % slower on a CPU-bound
box), and flat costs nothing to keep. The predicted-fastest is then the runner-up and the margin
negative (flat is predicted slower by that much)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from dmt_compile.strategy.candidate import Candidate, Refusal
from dmt_compile.strategy.predict import Prediction
from dmt_compile.strategy.quality_risk import QualityEstimate, verdict

__all__ = ["CandidateRow", "StrategyChoice", "choose"]


@dataclass(frozen=True)
class CandidateRow:
    candidate: Candidate
    prediction: Prediction
    quality: QualityEstimate | None = None
    dropped: str = ""  # why the candidate cannot be chosen ('' when it can)


@dataclass(frozen=True)
class StrategyChoice:
    """Every candidate with its prediction and quality, the choice and why (see `explain`)."""

    topology: str
    batch_per_rank: int
    predictor: str
    quality_budget: float
    quality: str  # "not checked" or what measured it
    rows: tuple[CandidateRow, ...]  # fastest first
    refusals: tuple[Refusal, ...]
    chosen: str  # candidate key
    runner_up: str | None
    margin: float | None  # (runner-up - chosen) / chosen predicted step
    uncertain: bool  # the predictor's error exceeds the margin
    notes: tuple[str, ...] = field(default=())

    @property
    def quality_checked(self) -> bool:
        return self.quality != "not checked"

    def row(self, key: str) -> CandidateRow:
        return next(r for r in self.rows if r.candidate.key == key)

    @property
    def candidate(self) -> Candidate:
        return self.row(self.chosen).candidate

    def to_dict(self) -> dict:
        from dmt_compile.strategy.explain import choice_dict

        return choice_dict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    def __str__(self) -> str:
        from dmt_compile.strategy.explain import choice_table

        return choice_table(self)


def choose(candidates: Sequence[Candidate], predictions: Mapping[str, Prediction], *, topology: str,
           batch_per_rank: int, predictor: str, refusals: Sequence[Refusal] = (), quality_budget: float = 0.002,
           quality: Mapping[str, QualityEstimate] | None = None, quality_source: str = "not checked",
           notes: Sequence[str] = (), keep_flat_within_error: bool = True) -> StrategyChoice:
    """The fastest candidate that survives the quality verdict; exact candidates always survive; flat
    when the fastest beats it by less than the predictor's error (module docstring)."""
    checked = quality is not None
    quality = quality or {}
    rows = [CandidateRow(c, predictions[c.key], quality.get(c.key),
                         verdict(c, quality.get(c.key), quality_budget, checked)) for c in candidates]
    order = {c.key: i for i, c in enumerate(candidates)}
    rows.sort(key=lambda r: (r.prediction.seconds, order[r.candidate.key]))
    eligible = [r for r in rows if not r.dropped]
    if not eligible:  # cannot happen while flat is a candidate; pins may remove it
        eligible = [r for r in rows if r.candidate.exact] or rows[:1]
    best = eligible[0]
    runner = eligible[1] if len(eligible) > 1 else None
    flat = next((r for r in eligible if r.candidate.strategy == "flat"), None)
    notes = list(notes)
    if keep_flat_within_error and flat is not None and best is not flat:
        gain = (flat.prediction.seconds - best.prediction.seconds) / best.prediction.seconds
        error = max(best.prediction.rel_error, flat.prediction.rel_error)
        if gain < error:
            notes.append(f"kept flat: {best.candidate.key} is predicted {gain * 100:.1f} % faster, within the "
                         f"predictor's error (±{error * 100:.0f} %); a rewrite is chosen only when it beats flat by "
                         "more than that (keep_flat_within_error)")
            best, runner = flat, best
    margin = uncertain = None
    if runner is not None:
        margin = (runner.prediction.seconds - best.prediction.seconds) / best.prediction.seconds
        uncertain = margin < max(best.prediction.rel_error, runner.prediction.rel_error)
    return StrategyChoice(topology, batch_per_rank, predictor, quality_budget, quality_source, tuple(rows),
                          tuple(refusals), best.candidate.key, runner.candidate.key if runner else None, margin,
                          bool(uncertain), tuple(notes))
