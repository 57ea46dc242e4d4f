"""``bench --strategy auto``: the choice of ``strategy="auto"`` for this bench's setting, timed as a row.

Before the timed runs (after the NIC rate is known), :func:`choose_for_bench` calls
``dmt_compile.choose_strategy`` on the bench model for the bench's topology (``N x L`` hosts x
ranks at the NIC rate of the run) and per-rank batch, pricing candidates with the fitted step model
(the shipped parameter set, or ``--cost-params P.json``; ranks per core = this run's world / cores),
without calibration training (quality is not checked: only exact and quality-neutral candidates can
be chosen). What it states goes into the row's ``auto`` field: the chosen candidate, its predicted
step, the runner-up and margin, whether the predictor's held-out error makes the choice uncertain,
and how long choosing took.

**Timing.** If the chosen candidate is a run the bench already times (flat, sptt, or sptt_tm at that
compression with the bench's Tower Module and feed, on the same wire), the auto row **reuses that
run's samples** (``auto.reused_samples_of`` names it: the same rounds, so its paired ratio to that
run is exactly 1); otherwise the candidate joins the interleaved rounds as run ``auto`` and is timed
like every other run. Either way the row's ``run`` is ``auto`` and ``strategy`` is ``auto``.
"""
from __future__ import annotations

import copy
import time
from typing import Any

__all__ = ["choose_for_bench", "matching_run", "add_auto_rows", "AUTO"]

AUTO = "auto"


def matching_run(candidate: Any, tower_module: str, feed: str, runs: list[tuple]) -> tuple | None:
    """The bench run (strategy, compression, wire) that builds `candidate`, or None."""
    wire = candidate.wire_dtype
    if candidate.strategy == "flat":
        want = ("flat", None, wire)
    elif candidate.tower_module == "identity":
        want = ("sptt", None, wire)
    elif candidate.tower_module == tower_module and (candidate.feed == feed or (feed == "auto"
                                                                               and candidate.feed != "decoder")):
        want = ("sptt_tm", float(candidate.compression), wire)
    else:
        return None
    return next((tuple(r) for r in runs if tuple(r) == want), None)


def _predictor(cost_params: str | None, rate_bits: float, ranks_per_core: float) -> Any:
    from dmt_compile.errors import CostModelError
    from dmt_compile.strategy.fitted_default import DEFAULT_PARAMS
    from dmt_compile.strategy.fitted_predict import FittedPredictor
    from dmt_compile.topo.fitted_params import FittedParams

    if cost_params:
        fitted = FittedParams.load(cost_params)
    elif DEFAULT_PARAMS is not None:
        fitted = FittedParams.from_dict(DEFAULT_PARAMS, "the shipped parameter set")
    else:
        raise CostModelError("bench --strategy auto needs fitted step-model parameters and none are shipped",
                             "fit some: dmt-compile cost --fit A.json --held-out B.json --save P.json; "
                             "then pass --cost-params P.json")
    return FittedPredictor(fitted, ranks_per_core=ranks_per_core, rate_bits=rate_bits)


def choose_for_bench(cfg: Any, rate_bits: float, ranks_per_core: float, runs: list[tuple]) -> dict[str, Any]:
    """The auto choice for `cfg` at `rate_bits` (module docstring): {"info": row field, "run": the
    bench run it reuses or None, "kwargs": transform keywords of the candidate, "wire": its wire}."""
    import dmt_compile
    from dmt_compile.topo import Topology
    from benchmarks.emulated.worker import _load, run_key

    model, inputs = _load(cfg.spec, 8)
    predictor = _predictor(getattr(cfg, "cost_params", None), rate_bits, ranks_per_core)
    start = time.perf_counter()
    choice = dmt_compile.choose_strategy(model, Topology(cfg.num_hosts, cfg.local_size), inputs,
                                         batch_per_rank=cfg.per_rank_batch, predictor=predictor, log=None)
    took = time.perf_counter() - start
    c = choice.candidate
    chosen = choice.row(choice.chosen).prediction
    reuse = matching_run(c, cfg.tower_module, cfg.feed, runs)
    kwargs = c.transform_kwargs(cfg.num_hosts, cfg.local_size)
    kwargs.pop("wire_dtype", None)
    info = {"chosen": choice.chosen, "describe": c.describe(), "predicted_step_s": chosen.seconds,
            "predicted_rel_error": chosen.rel_error, "runner_up": choice.runner_up, "margin": choice.margin,
            "uncertain": choice.uncertain, "predictor": choice.predictor, "quality": choice.quality,
            "exact": c.exact, "candidates": len(choice.rows), "choose_s": took, "notes": list(choice.notes),
            "reused_samples_of": run_key(*reuse) if reuse else None,
            "tower_widths_out": [t.width_out for t in c.towers],
            "predicted": {r.candidate.key: r.prediction.seconds for r in choice.rows}}
    return {"info": info, "run": reuse, "kwargs": kwargs, "wire": c.wire_dtype}


def add_auto_rows(rows: list[dict[str, Any]], auto: dict[str, Any] | None, non_wire: dict[str, float]) -> None:
    """In place: the auto row (a copy of the reused run's row, or the auto run's own row renamed
    ``auto``), with ``auto`` = what the choice stated; `non_wire` gets the ``auto`` key too."""
    if not auto:
        return
    info = auto["info"]
    if info["reused_samples_of"]:
        src = next((r for r in rows if r["run"] == info["reused_samples_of"]), None)
        if src is None:  # the reused run failed to build: nothing was timed for auto either
            return
        row = copy.deepcopy(src)
        rows.append(row)
        if src["run"] in non_wire:
            non_wire[AUTO] = non_wire[src["run"]]
    else:
        row = next((r for r in rows if r["strategy"] == AUTO), None)
        if row is None:
            return
        if row["run"] in non_wire:
            non_wire[AUTO] = non_wire.pop(row["run"])
    row.update(strategy=AUTO, run=AUTO, auto=info)


def plan_auto_run(cfg: Any, opts: Any, runs: list[tuple], rate_bits: float, ranks_per_core: float,
                  log: Any) -> tuple[Any, list[tuple], dict[str, Any]]:
    """Choose (:func:`choose_for_bench`) and add the candidate to the timed runs unless a run already
    builds it; returns (options, runs, the choice) for :func:`add_auto_rows`."""
    from dataclasses import replace

    auto = choose_for_bench(cfg, rate_bits, ranks_per_core, runs)
    info = auto["info"]
    log(f"strategy auto chose {info['chosen']} (predicted {info['predicted_step_s'] * 1e3:.1f} ms"
        + (f", margin {info['margin'] * 100:.1f} % to {info['runner_up']}" if info["runner_up"] else "")
        + (", uncertain" if info["uncertain"] else "") + f"; chose in {info['choose_s']:.1f} s); "
        + (f"reusing the samples of run {info['reused_samples_of']}" if info["reused_samples_of"]
           else "timed as run auto"))
    if auto["run"] is None:
        runs = [*runs, (AUTO, None, auto["wire"])]
        opts = replace(opts, runs=tuple(runs), auto=tuple(sorted(auto["kwargs"].items())))
    return opts, runs, auto
