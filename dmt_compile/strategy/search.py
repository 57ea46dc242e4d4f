"""`choose_for_graph`: the whole search on a captured, planned graph (what `strategy="auto"` runs).

gather what the model admits (one plan, one feed trial) -> enumerate candidates under the pins ->
predict each with the StepPredictor (given, a fitted parameter file, or `default_predictor`) -> measure the shortlist's quality when a QualityCheck is
given (its cost logged first, progress reported) -> choose. No candidate is transformed; the
caller transforms the chosen one.
"""
from __future__ import annotations

from typing import Callable

import torch.fx as fx

from dmt_compile.errors import CostModelError
from dmt_compile.passes.base import PassContext
from dmt_compile.strategy.admission import gather_facts
from dmt_compile.strategy.candidates import Pins, enumerate_candidates
from dmt_compile.strategy.choose import StrategyChoice, choose
from dmt_compile.strategy.fitted_predict import resolve_predictor
from dmt_compile.strategy.predict import CostModelPredictor, StepPredictor
from dmt_compile.strategy.quality_risk import Progress, QualityCheck, shortlist

__all__ = ["choose_for_graph", "DEFAULT_BATCH_PER_RANK"]

DEFAULT_BATCH_PER_RANK = 1024  # the cost model's reference batch (docs/COST_MODEL.md §5)


def _predict_all(candidates, predictor: StepPredictor, topology, batch: int) -> dict:
    try:
        return {c.key: predictor.predict(c, topology, batch) for c in candidates}
    except CostModelError as exc:
        raise CostModelError(f"strategy='auto' cannot price the candidates on {topology}: {exc.problem}",
                             "use a topology with link numbers (a preset such as 'h100:16'), or pass a predictor"
                             ) from None


def choose_for_graph(gm: fx.GraphModule, ctx: PassContext, *, pins: Pins = Pins(),
                     predictor: StepPredictor | str | None = None, batch_per_rank: int | None = None,
                     quality_budget: float = 0.002, quality_check: QualityCheck | None = None,
                     log: Callable[[str], None] | None = None, progress: Progress | None = None) -> StrategyChoice:
    """The StrategyChoice for the graph after `plan-towers` (module docstring)."""
    predictor, why = resolve_predictor(predictor, ctx.topology)
    batch = batch_per_rank or DEFAULT_BATCH_PER_RANK
    facts = gather_facts(gm, ctx)
    candidates, refusals = enumerate_candidates(facts, pins)
    predictions = _predict_all(candidates, predictor, ctx.topology, batch)
    notes = [why] if why else []
    if batch_per_rank is None:
        notes.append(f"batch per rank {batch} (the default; pass the training batch per rank to price yours)")
    if isinstance(predictor, CostModelPredictor) and ctx.topology.flop_rate is None and predictor.params.flop_rate is None:
        notes.append(f"topology {ctx.topology} has no flop rate: compute is not priced (communication and lookups only)")
    quality, source = None, "not checked"
    if quality_check is not None:
        short = shortlist(candidates, {k: p.seconds for k, p in predictions.items()})
        source = f"measured on {quality_check.name}"
        quality = {}
        if short:
            if log:
                log(f"quality check of {len(short)} candidate(s) ({', '.join(c.key for c in short)}): "
                    f"{quality_check.cost(short)}")
            quality = dict(quality_check.measure(short, progress))
        else:
            notes.append("no inexact candidate is predicted faster than the exact ones: nothing to measure")
    return choose(candidates, predictions, topology=str(ctx.topology), batch_per_rank=batch,
                  predictor=predictor.name, refusals=refusals, quality_budget=quality_budget, quality=quality,
                  quality_source=source, notes=notes)
