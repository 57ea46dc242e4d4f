"""`choose_strategy` and `transform(strategy="auto")`: the search of `dmt_compile.strategy` on a model.

`dmt_compile.api` calls in here and hands over its `run_passes` and `transform` (this module sits beside
`api` and does not import it: `dmt_compile.choose_strategy` / `transform(strategy="auto")` are the
entry points).

The model is captured and planned once (split-collections, split-tables, detect, plan-towers);
the search derives every candidate from that plan; only the chosen candidate is transformed
(flat: one tower on a 1 x W topology, as the flat baseline runs). The plan of the returned model
carries the whole candidate table (`dmt.plan.auto`, printed with the plan).
"""
from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import torch

from dmt_compile.errors import InputError
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.options import OPTIONS, TransformOptions
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.split_collections import SplitCollections
from dmt_compile.passes.split_tables import SplitTables
from dmt_compile.printing.progress import ProgressBar
from dmt_compile.strategy import PairedTraining, Pins, StepPredictor, StrategyChoice, choose_for_graph
from dmt_compile.strategy.quality_risk import Progress, QualityCheck
from dmt_compile.topo import Topology, as_topology

__all__ = ["choose_strategy", "transform_auto", "STRATEGIES"]

STRATEGIES = ("manual", "auto")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _builder(transform: Callable, topology: Topology, example_inputs: Any, options: Mapping[str, Any]):
    """Builds a candidate for the paired training: its transform, with the exchanges rounded as its
    wire dtype rounds them (one process has no exchanges: `emulate_wire` stands in for them)."""
    from dmt_compile.runtime.wire_codec import emulate_wire

    def build(candidate, model: torch.nn.Module) -> torch.nn.Module:
        kwargs = candidate.transform_kwargs(topology.num_hosts, topology.local_size)
        shape = kwargs.pop("topology_shape", None)
        topo = Topology(*shape) if shape else topology
        return emulate_wire(transform(model, topo, example_inputs, inplace=True, **{**options, **kwargs}),
                            candidate.wire_dtype)
    return build


def choose_strategy(run_passes: Callable, transform: Callable, model: torch.nn.Module, topology: Any,
                    example_inputs: tuple, *, pins: Pins = Pins(),
                    batch_per_rank: int | None = None, quality_budget: float = 0.002,
                    quality_data: Sequence[Any] | None = None, quality_check: QualityCheck | None = None,
                    predictor: StepPredictor | str | None = None, wire_dtype: str | None = None,
                    plan_options: Mapping[str, Any] | None = None,
                    log: Callable[[str], None] | None = _stderr, progress: Progress | None = None,
                    **capture: Any) -> StrategyChoice:
    """Search the candidates `model` admits on `topology` and choose one (see `dmt_compile.strategy`).

    `quality_data`: `[(inputs tuple, labels), ...]` for a paired training of the shortlist against
    flat (or pass any `quality_check`); without either, quality is not checked. `predictor`: a
    StepPredictor or the path of a fitted parameter file (`dmt-compile cost --fit ... --save P.json`);
    default `dmt_compile.strategy.default_predictor`. `wire_dtype` pins the wire. `plan_options`: the
    options `transform` takes that the search does not choose (`num_towers`, `towers`, `partitioner`,
    `seed`, `table_ranges`, ...); they shape the one tower plan.
    `capture`: `example_kwargs`, `calibration_batches`, `capture_paths` as `transform` takes them.
    """
    if not isinstance(quality_budget, (int, float)) or isinstance(quality_budget, bool) or quality_budget < 0:
        raise InputError(f"quality_budget must be a non-negative AUC difference, got {quality_budget!r}",
                         "e.g. quality_budget=0.002 (at most 0.002 AUC below flat)")
    if batch_per_rank is not None and (not isinstance(batch_per_rank, int) or batch_per_rank < 1):
        raise InputError(f"batch_per_rank must be a positive integer, got {batch_per_rank!r}", "e.g. batch_per_rank=1024")
    plan = TransformOptions(**dict(plan_options or {}))
    topo = as_topology(topology)
    if wire_dtype is not None:
        pins = replace(pins, wire_dtype=wire_dtype)
    passes = [SplitCollections(), SplitTables(**plan.for_pass(SplitTables)), Detect(),
              PlanTowers(**plan.for_pass(PlanTowers))]
    for p in passes:
        p.check_fields()
    gm, ctx, _ = run_passes(model, topo, example_inputs, passes, **capture)
    if quality_check is None and quality_data is not None:
        quality_check = PairedTraining(model, list(quality_data),
                                       _builder(transform, topo, example_inputs, dict(plan.given)))
    return choose_for_graph(gm, ctx, pins=pins, predictor=predictor, batch_per_rank=batch_per_rank,
                            quality_budget=quality_budget, quality_check=quality_check, log=log,
                            progress=progress or ProgressBar("quality check"))


def transform_auto(run_passes: Callable, transform: Callable, model: torch.nn.Module, topology: Any,
                   example_inputs: tuple, strategy: str, options: TransformOptions, capture: Mapping[str, Any],
                   search: Mapping[str, Any]):
    """`transform(..., strategy="auto")`: choose, then transform the chosen candidate once.

    `options` is the call's `TransformOptions`: the searched options (`Option.searched`: Tower Module,
    compression, feed) set there pin the search; the others (tower count, tower pins, partitioner,
    seed, table ranges) shape the one tower plan and every candidate's transform.
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}", 'use strategy="manual" (default) or strategy="auto"')
    options.validated(search=True)  # typed errors for bad options first
    given = options.given
    pins = Pins(tower_module=given.get("tower_module"), compression=given.get("compression"),
                feed=None if options.feed == "auto" else options.feed)  # the searched options set pin the search
    plan_options = {name: value for name, value in options.given.items() if not OPTIONS[name].searched}
    choice = choose_strategy(run_passes, transform, model, topology, example_inputs, pins=pins,
                             plan_options=plan_options, **search, **capture)
    topo = as_topology(topology)
    kwargs = choice.candidate.transform_kwargs(topo.num_hosts, topo.local_size)
    shape = kwargs.pop("topology_shape", None)
    dmt = transform(model, Topology(*shape) if shape else topo, example_inputs, **{**plan_options, **kwargs},
                    **capture)
    note = f"strategy auto chose {choice.chosen}" + (" (uncertain: see the candidate table)" if choice.uncertain else "")
    if shape:
        note += f"; flat runs as one tower on {shape[0]}x{shape[1]} (table-wise over the world)"
    dmt.plan = replace(dmt.plan, notes=dmt.plan.notes + (note,), auto=choice)
    return dmt
