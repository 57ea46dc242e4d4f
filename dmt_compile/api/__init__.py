"""`transform(model, topology, example_inputs)`: the public entry point (`DmtModel` lives in `model/`)."""
from __future__ import annotations

import dataclasses

import inspect
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.fx as fx

from dmt_compile.capture import PATHS, CaptureReport, capture, copy_model
from dmt_compile.capture.inputs import InputSpec
from dmt_compile.errors import InputError
from dmt_compile.capture.preconditions import check_model
from dmt_compile.capture.unregistered import adopt_unregistered_modules
from dmt_compile.capture.wrappers import unwrap_model
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.ir.table_splits import TableSplits
from dmt_compile.model import DmtModel, OriginalState, flat_state_dict
from dmt_compile.model.refuse_transformed import refuse_transformed
from dmt_compile.passes.options import OPTIONS, TransformOptions, options_doc
from dmt_compile.passes.base import Pass, PassContext, PassPipeline
from dmt_compile.passes.pipeline import default_pipeline
from dmt_compile.topo import Topology, as_topology

__all__ = ["transform", "run_passes", "DmtModel", "default_pipeline", "TransformOptions", "flat_state_dict",
           "choose_strategy"]

DumpCallback = Callable[[int, str, fx.GraphModule, PassContext], None]


def _flatten_calibration(spec: InputSpec, batches: Sequence[Any] | None) -> tuple[list[Any], ...]:
    out = []
    for i, batch in enumerate(batches or ()):
        batch = batch if isinstance(batch, tuple) else (batch,)
        try:
            out.append(spec.flatten(batch, {}))
        except InputError as exc:
            raise InputError(
                f"calibration batch {i} does not have the structure of example_inputs: {exc.problem}",
                "pass calibration_batches as a list of tuples shaped like example_inputs",
            ) from exc
    return tuple(out)


def transform(
    model: torch.nn.Module,
    topology: Any,
    example_inputs: tuple | None = None,
    *,
    example_kwargs: Mapping[str, Any] | None = None,
    calibration_batches: Sequence[Any] | None = None,
    capture_paths: str | Sequence[str] = "auto",
    inplace: bool = False,
    callback: DumpCallback | None = None,
    wire_dtype: str | None = None,
    strategy: str = "manual",
    quality_budget: float = 0.002,
    batch_per_rank: int | None = None,
    quality_data: Sequence[Any] | None = None,
    quality_check: Any = None,
    predictor: Any = None,
    **options: Any,
) -> DmtModel:
    """Rewrite a flat recommendation model into SPTT towers with Tower Modules.

    Long: the public entry point; its signature and this docstring list every option.

    Args:
        model: any `nn.Module` with embedding lookups.
        topology: a `Topology` or a spec such as `"2x4"` (hosts x ranks per host).
        example_inputs: positional inputs the model accepts (a tuple).
        example_kwargs: keyword inputs the model accepts, beside `example_inputs`.
        calibration_batches: inputs like `example_inputs` (a tuple each) for the learned partitioner.
        capture_paths: `"auto"` (symbolic, specialize, specialize+leaf, export, export-static, the first
            that reproduces the model), or the paths to try, e.g. `"export"` or `("symbolic", "export")`.
        inplace: share modules with `model` instead of copying it first.
        callback: called as `callback(index, pass_name, gm, ctx)` after capture and each pass.
        wire_dtype: format of the pooled-embedding exchanges (lookups and tower outputs, forward and
            gradients) once distributed: None (the embeddings' own dtype, exact), `"fp32"`, `"fp16"`,
            `"bf16"` or `"fp8_e4m3"` (see `runtime/wire_codec.py`).
        strategy: `"manual"` (the options as given) or `"auto"`: search flat, identity and every
            compressing Tower Module x compression x feed the model admits, predict each step on
            `topology` at `batch_per_rank` (`predictor`: a StepPredictor or a fitted parameter file's path;
            default `strategy.default_predictor`), drop candidates that
            break `quality_budget` (ΔAUC vs flat, measured by a paired training on `quality_data` =
            `[(inputs, labels), ...]` or by `quality_check`; unchecked, only exact candidates and those
            the quality harness measured within the budget stay, `strategy.quality_evidence`) and transform the fastest; `tower_module` / `compression` / `feed` / `wire_dtype` set pin it, and
            `dmt.plan.auto` holds the candidate table (`dmt_compile.strategy`).
        **options: the passes' options (`dmt_compile.passes.options.OPTIONS`, one per option field of
            a pipeline pass); left out or None: unset, the pass's default (searched by `strategy="auto"`
            where marked):
    """
    options = TransformOptions(**options)
    if strategy != "manual":  # the search (dmt_compile.strategy), then this function on the chosen candidate
        from dmt_compile.api.auto import transform_auto

        return transform_auto(run_passes, transform, model, topology, example_inputs, strategy, options,
                              dict(example_kwargs=example_kwargs, calibration_batches=calibration_batches,
                                   capture_paths=capture_paths),
                              dict(batch_per_rank=batch_per_rank, quality_budget=quality_budget,
                                   quality_data=quality_data, quality_check=quality_check, predictor=predictor,
                                   wire_dtype=wire_dtype))
    from dmt_compile.runtime.wire_codec import check_wire_dtype

    check_wire_dtype(wire_dtype)
    options.validated()
    model, unwrapped = unwrap_model(model)  # torch.compile / DataParallel: the module they run, its names
    work = model if inplace else copy_model(model)
    adopt_unregistered_modules(work)  # tables kept in a plain dict: registered before names are recorded
    originals = OriginalState(work)  # the original names of every tensor, by identity (DmtModel.state_dict)
    gm, ctx, report = run_passes(work, topology, example_inputs, default_pipeline(options),
                                 example_kwargs=example_kwargs, calibration_batches=calibration_batches,
                                 capture_paths=capture_paths, inplace=True, callback=originals.wrap(callback))
    report = dataclasses.replace(report, unwrapped=unwrapped) if unwrapped else report
    splits = ctx.get(TableSplits) if ctx.has(TableSplits) else TableSplits()
    dmt = DmtModel(gm, ctx.input_spec, ctx.get(TowerPlan), ctx.get(Detection), report, ctx.topology, originals,
                   table_splits=splits)
    dmt.wire_dtype = wire_dtype  # read by the lowering (runtime exchanges); no effect on one process
    return dmt


def _with_options(func: Callable) -> Callable:
    """`func`'s signature and docstring with the pass options in place of `**options` (derived from `OPTIONS`).

    Unset shows as None for the options `strategy="auto"` searches, as the pass's default for the others.
    """
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, annotation=o.field.type,
                                 default=None if o.searched else o.default) for o in OPTIONS.values()]
    func.__signature__ = sig.replace(parameters=params)
    func.__doc__ = f"{func.__doc__.rstrip()}\n\n{options_doc('            - ')}\n    "
    return func


_with_options(transform)


def choose_strategy(model: torch.nn.Module, topology: Any, example_inputs: tuple, **kwargs: Any):
    """The `strategy="auto"` search without the transform: a `dmt_compile.strategy.StrategyChoice`.

    Keywords: `pins` (`strategy.Pins`), `batch_per_rank`, `quality_budget`, `quality_data`,
    `quality_check`, `predictor`, `plan_options` (num_towers, towers, partitioner, seed,
    table_ranges), `log`, `progress`, and the capture keywords of `transform`.
    """
    from dmt_compile.api.auto import choose_strategy as search

    return search(run_passes, transform, model, topology, example_inputs, **kwargs)


def run_passes(
    model: torch.nn.Module, topology: Any, example_inputs: tuple | None, passes: Sequence[Pass], *,
    example_kwargs: Mapping[str, Any] | None = None, calibration_batches: Sequence[Any] | None = None,
    capture_paths: str | Sequence[str] = "auto", inplace: bool = False, callback: DumpCallback | None = None,
) -> tuple[fx.GraphModule, PassContext, CaptureReport]:
    """Capture `model` and run `passes` on it; returns the graph, the context (analyses) and the capture report.

    `transform` is `run_passes(..., default_pipeline(options))` wrapped in a `DmtModel`; this entry
    point runs any pipeline (e.g. `parse_pipeline("split-collections,detect")` from `dmt-compile dump --passes`).
    """
    model, unwrapped = unwrap_model(model)  # torch.compile / DataParallel: the module they run
    refuse_transformed(model)
    check_model(model, example_inputs, example_kwargs)  # typed errors, before capture (which checks the ids)
    topo = as_topology(topology)
    if example_inputs is None:
        raise InputError("example_inputs are required", "pass example_inputs=(dense, sparse) as the model takes them")
    if calibration_batches is not None and len(calibration_batches) == 0:
        raise InputError("calibration_batches is empty", "pass at least one batch, or leave calibration_batches out")
    work = model if inplace else copy_model(model)
    adopt_unregistered_modules(work)  # tables kept in a plain dict: registered before names are recorded
    paths = PATHS if capture_paths == "auto" else (capture_paths,) if isinstance(capture_paths, str) \
        else tuple(capture_paths)
    captured = capture(work, example_inputs if isinstance(example_inputs, tuple) else (example_inputs,),
                       dict(example_kwargs or {}), paths, calibration_batches)
    ctx = PassContext(topo, captured.spec, captured.flat_inputs, captured.reference_output,
                      _flatten_calibration(captured.spec, calibration_batches))
    if callback is not None:
        callback(0, "capture", captured.gm, ctx)
    gm = PassPipeline(passes, callback)(captured.gm, ctx)
    report = dataclasses.replace(captured.report, unwrapped=unwrapped) if unwrapped else captured.report
    return gm, ctx, report
