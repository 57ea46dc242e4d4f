"""`transform(model, topology, example_inputs)`: the public entry point."""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
import torch.fx as fx

from dmt_compile.capture import CaptureReport, capture, copy_model
from dmt_compile.errors import InputError, TowerModuleError
from dmt_compile.capture.inputs import InputSpec
from dmt_compile.passes.base import PassContext, PassPipeline
from dmt_compile.passes.detect import Detect, Detection
from dmt_compile.partition.plan_towers import PlanTowers
from dmt_compile.passes.split_collections import SplitCollections
from dmt_compile.passes.sptt_rewrite import SpttRewrite
from dmt_compile.passes.insert_tower_modules import FEEDS, TowerModules
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.topo import as_topology
from dmt_compile.tower_modules import TOWER_MODULES

__all__ = ["transform", "DmtModel", "default_passes", "sparse_feature_widths"]

DumpCallback = Callable[[int, str, fx.GraphModule, PassContext], None]


def default_passes():
    """The compiler pipeline, in order (capture runs before it)."""
    return [
        SplitCollections(),  # one lookup per table for torchrec EmbeddingBagCollections
        Detect(),  # find lookups, their id sources and feature groups
        PlanTowers(),  # choose towers (pure analysis)
        SpttRewrite(),  # boundary nodes + identity Tower Modules
        TowerModules(),  # swap in compressing TMs, direct feed or decoders
    ]


class DmtModel(torch.nn.Module):
    """The transformed model: same call convention as the original, plus `.plan`."""

    def __init__(self, gm: fx.GraphModule, spec: InputSpec, plan: TowerPlan, detection: Detection,
                 capture_report: CaptureReport, topology: Any):
        super().__init__()
        self.graph_module = gm
        self.input_spec = spec
        self.plan = plan
        self.detection = detection
        self.capture_report = capture_report
        self.topology = topology

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.graph_module(*self.input_spec.flatten(args, kwargs))

    def dump(self, fmt: str = "table") -> str:
        from dmt_compile.printing import render

        return render(self, fmt)


def _check_options(tower_module: str, compression: float | None, feed: str) -> float:
    if tower_module not in TOWER_MODULES:
        raise TowerModuleError(
            f"unknown tower_module {tower_module!r}", "choose one of: " + ", ".join(sorted(TOWER_MODULES))
        )
    if feed not in FEEDS:
        raise TowerModuleError(f"unknown feed {feed!r}", "choose one of: " + ", ".join(FEEDS))
    if tower_module == "identity":
        if compression not in (None, 1, 1.0):
            raise TowerModuleError(
                f"the identity tower module cannot compress (compression={compression})",
                'use tower_module="linear" (or another compressing module) with compression > 1',
            )
        return 1.0
    c = 4.0 if compression is None else compression
    if not isinstance(c, (int, float)) or isinstance(c, bool) or not 1 <= c <= 16:
        raise TowerModuleError(f"compression must be a number in [1, 16], got {c!r}",
                               "DMT compresses up to 16x; e.g. compression=4")
    return float(c)


def transform(
    model: torch.nn.Module,
    topology: Any,
    example_inputs: tuple | None = None,
    *,
    example_kwargs: Mapping[str, Any] | None = None,
    num_towers: int | None = None,
    towers: Mapping[str, int] | Sequence[Sequence[str]] | None = None,
    tower_module: str = "identity",
    compression: float | None = None,
    feed: str = "auto",
    partitioner: str = "balanced",
    calibration_batches: Sequence[Any] | None = None,
    seed: int = 0,
    inplace: bool = False,
    callback: DumpCallback | None = None,
) -> DmtModel:
    """Rewrite a flat recommendation model into SPTT towers with Tower Modules.

    Args:
        model: any `nn.Module` with embedding lookups.
        topology: a `Topology` or a spec such as `"2x4"` (hosts x ranks per host).
        example_inputs: positional inputs the model accepts (a tuple).
        num_towers: towers to build (default: one per host).
        towers: pins, `{"feature": tower}` or a list of feature lists.
        tower_module: `"identity"` (exact) or a compressing module such as `"linear"`.
        compression: ratio c for a compressing module (default 4).
        feed: `"auto"`, `"direct"` (interaction consumes compressed embeddings) or `"decoder"`.
        partitioner: `"balanced"` (default), `"learned"` (feature affinity from the model's
            embeddings on `calibration_batches`), `"random"` or `"contiguous"`.
        calibration_batches: inputs like `example_inputs` (a tuple each) for the learned partitioner.
        seed: seed for partitioners that use randomness.
        inplace: share modules with `model` instead of copying it first.
        callback: called as `callback(index, pass_name, gm, ctx)` after capture and each pass.
    """
    topo = as_topology(topology)
    c = _check_options(tower_module, compression, feed)
    if example_inputs is None:
        raise InputError("example_inputs are required", "pass example_inputs=(dense, sparse) as the model takes them")
    work = model if inplace else copy_model(model)
    captured = capture(work, example_inputs if isinstance(example_inputs, tuple) else (example_inputs,),
                       dict(example_kwargs or {}))
    calibration = None
    if calibration_batches is not None:
        calibration = []
        for i, batch in enumerate(calibration_batches):
            batch = batch if isinstance(batch, tuple) else (batch,)
            try:
                calibration.append(captured.spec.flatten(batch, {}))
            except InputError as exc:
                raise InputError(
                    f"calibration batch {i} does not have the structure of example_inputs: {exc.problem}",
                    "pass calibration_batches as a list of tuples shaped like example_inputs",
                ) from exc
    ctx = PassContext(
        topology=topo, flat_inputs=captured.flat_inputs, reference_output=captured.reference_output,
        options={"input_spec": captured.spec, "num_towers": num_towers, "towers": towers,
                 "tower_module": tower_module, "compression": c, "feed": feed,
                 "partitioner": partitioner, "calibration_flat": calibration, "seed": seed},
    )
    if callback is not None:
        callback(0, "capture", captured.gm, ctx)
    gm = PassPipeline(default_passes(), callback)(captured.gm, ctx)
    return DmtModel(gm, captured.spec, ctx.plan, ctx.detection, captured.report, topo)


def sparse_feature_widths(spec: str) -> list[int]:
    """Embedding elements per sample of each sparse feature group of a MODEL_SPEC (for the cost model)."""
    from dmt_compile.capture.model_spec import load_model_spec

    model, inputs = load_model_spec(spec)
    dmt = transform(model, "1x1", inputs, num_towers=1)
    return [g.width for g in dmt.detection.groups]
