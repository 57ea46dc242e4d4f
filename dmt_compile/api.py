"""`transform(model, topology, example_inputs)`: the public entry point, and `DmtModel`."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.fx as fx

from dmt_compile.capture import PATHS, CaptureReport, capture, copy_model
from dmt_compile.capture.inputs import InputSpec
from dmt_compile.errors import CheckpointError, InputError
from dmt_compile.input_checks import check_model_and_inputs
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.ir.table_splits import TableSplits
from dmt_compile.lowering.checkpoint_graph import PortableGraphModule, clean_types
from dmt_compile.lowering.checkpoint_names import (OriginalState, flat_state_dict, held_key, rebuilt_layers,
                                                   resolve_state_names)
from dmt_compile.options import TransformOptions
from dmt_compile.passes.base import Pass, PassContext, PassPipeline
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.flat_sequences import BatchMajorLookups
from dmt_compile.passes.insert_tower_modules import InsertTowerModules
from dmt_compile.passes.plan_feed import PlanFeed
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.split_collections import SplitCollections
from dmt_compile.passes.split_tables import SplitTables
from dmt_compile.passes.sptt_rewrite import SpttRewrite
from dmt_compile.topo import Topology, as_topology

__all__ = ["transform", "run_passes", "DmtModel", "default_pipeline", "TransformOptions", "flat_state_dict"]

DumpCallback = Callable[[int, str, fx.GraphModule, PassContext], None]


def default_pipeline(options: TransformOptions) -> list[Pass]:
    """The compiler pipeline, in order (capture runs before it)."""
    o = options
    return [
        SplitCollections(),  # one lookup per table for torchrec Embedding(Bag)Collections
        SplitTables(o.table_ranges),  # one table per field for concatenated tables with per-field offsets
        BatchMajorLookups(),  # flattened [B*L] sequence ids looked up per sample ([B, L])
        Detect(),  # find lookups, their id sources and feature groups
        PlanTowers(o.num_towers, o.towers, o.partitioner, o.seed),  # choose towers (pure analysis)
        PlanFeed(o.tower_module, o.compression, o.feed),  # decide each tower's feed; the plan is final
        SpttRewrite(),  # boundary nodes + identity Tower Modules
        InsertTowerModules(),  # apply the feed plan: compressing TMs, direct feed or decoders
    ]


class DmtModel(torch.nn.Module):
    """The transformed model: same call convention as the original, plus `.plan`.

    State: `state_dict()` uses the original model's name for every original parameter and buffer
    (modules the compiler added under `dmt.`), so `flat.load_state_dict(dmt.state_dict())` and
    back need no renaming for identity Tower Modules; `flat_state_dict(dmt)` gives exactly the
    original keys. `torch.save(dmt)` keeps the graph with its plan annotations (node names and
    meta survive `torch.load(..., weights_only=False)`).
    """

    def __init__(self, gm: fx.GraphModule, spec: InputSpec, plan: TowerPlan, detection: Detection,
                 capture_report: CaptureReport, topology: Topology, originals: OriginalState | None = None, *,
                 table_splits: TableSplits | None = None):
        super().__init__()
        if clean_types(gm.graph):
            gm.recompile()
        self.graph_module = gm
        self.input_spec = spec
        self.plan = plan
        self.detection = detection
        self.capture_report = capture_report
        self.topology = topology
        self.table_splits = table_splits or TableSplits()  # tables split per field (split-tables)
        self.state_names, held = resolve_state_names(gm, originals, self.table_splits)
        self.held_state = torch.nn.Module()  # original tensors the graph does not use
        for name, tensor in held.items():
            if isinstance(tensor, torch.nn.Parameter):
                self.held_state.register_parameter(held_key(name), tensor)
            else:
                self.held_state.register_buffer(held_key(name), tensor)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        # .forward: fx's GraphModule.__call__ prints the generated code's traceback to stderr on errors
        return self.graph_module.forward(*self.input_spec.flatten(args, kwargs))

    def dump(self, fmt: str = "table") -> str:
        from dmt_compile.printing import render

        return render(self, fmt)

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False) -> Any:
        """The state under the original model's names (class docstring)."""
        local = super().state_dict(*args, prefix="", keep_vars=keep_vars)
        out = OrderedDict() if destination is None else destination
        meta = getattr(out, "_metadata", None)
        if meta is None:
            meta = out._metadata = OrderedDict()
        for key, value in getattr(local, "_metadata", {}).items():
            meta[(prefix + key) if key else prefix[:-1]] = value
        for key in self.state_names.keys:
            if key in self.state_names.split:  # a table split per field: shown whole, rebuilt from its pieces
                pieces = {p: local[f"graph_module.{p}"] for p in self.state_names.piece_keys() if p.startswith("dmt.")}
                out[prefix + key] = self.state_names.split[key].whole(pieces)
            else:
                out[prefix + key] = local[self.state_names.targets(key)[0]]
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """Route original names to the graph module's paths (and aliases) before the children load."""
        names = self.state_names
        current = super().state_dict(keep_vars=False)
        for key in names.keys:
            targets = names.targets(key)
            if key in names.split:  # a whole table: its rows go to the per-field pieces
                value = state_dict.pop(prefix + key, None)
                if value is None:
                    missing_keys.append(prefix + key)
                    continue
                for piece, target in zip(names.split[key].pieces, targets):
                    state_dict[prefix + target] = value[piece.start:piece.stop:piece.step]
                continue
            value = state_dict.pop(prefix + key, None)
            if value is None:
                missing_keys.append(prefix + key)
                value = current[targets[0]]
            elif key in names.held_buffers and not torch.equal(value, current[targets[0]]):
                raise CheckpointError(
                    f"buffer {key!r} was folded into the graph as a constant at transform time; loading a "
                    "different value would not change what the model computes",
                    "load this state into the original model and transform it again")
            for t in targets:
                state_dict[prefix + t] = value
        for p in names.hidden:
            state_dict[prefix + "graph_module." + p] = current["graph_module." + p]
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """`nn.Module.load_state_dict` under the original names; a rebuilt layer's keys get a typed error."""
        rebuilt = [k for k in self.state_names.rebuilt if k in state_dict]
        if rebuilt and strict:
            raise CheckpointError(
                f"keys {rebuilt} belong to layers the rewrite rebuilt ({', '.join(rebuilt_layers(self.state_names))});"
                " the transformed model has no counterpart for them",
                "load with strict=False to take everything else")
        state = {k: v for k, v in state_dict.items() if k not in set(rebuilt)}
        return super().load_state_dict(state, strict=strict, assign=assign)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        modules = dict(state["_modules"])
        state["_portable_graph_module"] = PortableGraphModule(modules.pop("graph_module"))
        state["_modules"] = modules
        return state

    def __setstate__(self, state: dict) -> None:
        portable = state.pop("_portable_graph_module", None)
        super().__setstate__(state)
        if portable is not None:
            self._modules = {"graph_module": portable.rebuild(), **self._modules}


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
    num_towers: int | None = None,
    towers: Mapping[str, int] | Sequence[Sequence[str]] | None = None,
    tower_module: str = "identity",
    compression: float | None = None,
    feed: str = "auto",
    partitioner: str = "balanced",
    calibration_batches: Sequence[Any] | None = None,
    seed: int = 0,
    table_ranges: Mapping[str, Any] | None = None,
    capture_paths: str | Sequence[str] = "auto",
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
        table_ranges: per-field row ranges of concatenated tables whose ids arrive pre-offset,
            `{"embedding": [10, 20, 30]}` (rows per field) or `[(0, 10), (10, 30), (30, 60)]`.
        capture_paths: `"auto"` (symbolic, specialize, specialize+leaf, export, export-static, the first
            that reproduces the model), or the paths to try, e.g. `"export"` or `("symbolic", "export")`.
        inplace: share modules with `model` instead of copying it first.
        callback: called as `callback(index, pass_name, gm, ctx)` after capture and each pass.
    """
    options = TransformOptions(num_towers, towers, tower_module, compression, feed, partitioner, seed,
                               table_ranges).validated()
    work = model if inplace else copy_model(model)
    originals = OriginalState(work)  # the original names of every tensor, by identity (DmtModel.state_dict)
    gm, ctx, report = run_passes(work, topology, example_inputs, default_pipeline(options),
                                 example_kwargs=example_kwargs, calibration_batches=calibration_batches,
                                 capture_paths=capture_paths, inplace=True, callback=originals.wrap(callback))
    splits = ctx.get(TableSplits) if ctx.has(TableSplits) else TableSplits()
    return DmtModel(gm, ctx.input_spec, ctx.get(TowerPlan), ctx.get(Detection), report, ctx.topology, originals,
                    table_splits=splits)


def run_passes(
    model: torch.nn.Module, topology: Any, example_inputs: tuple | None, passes: Sequence[Pass], *,
    example_kwargs: Mapping[str, Any] | None = None, calibration_batches: Sequence[Any] | None = None,
    capture_paths: str | Sequence[str] = "auto", inplace: bool = False, callback: DumpCallback | None = None,
) -> tuple[fx.GraphModule, PassContext, CaptureReport]:
    """Capture `model` and run `passes` on it; returns the graph, the context (analyses) and the capture report.

    `transform` is `run_passes(..., default_pipeline(options))` wrapped in a `DmtModel`; this entry
    point runs any pipeline (e.g. `parse_pipeline("split-collections,detect")` from `dmt-compile dump --passes`).
    """
    check_model_and_inputs(model, example_inputs, example_kwargs, calibration_batches)  # typed errors, before capture
    topo = as_topology(topology)
    if example_inputs is None:
        raise InputError("example_inputs are required", "pass example_inputs=(dense, sparse) as the model takes them")
    if calibration_batches is not None and len(calibration_batches) == 0:
        raise InputError("calibration_batches is empty", "pass at least one batch, or leave calibration_batches out")
    work = model if inplace else copy_model(model)
    paths = PATHS if capture_paths == "auto" else (capture_paths,) if isinstance(capture_paths, str) \
        else tuple(capture_paths)
    captured = capture(work, example_inputs if isinstance(example_inputs, tuple) else (example_inputs,),
                       dict(example_kwargs or {}), paths)
    ctx = PassContext(topo, captured.spec, captured.flat_inputs, captured.reference_output,
                      _flatten_calibration(captured.spec, calibration_batches))
    if callback is not None:
        callback(0, "capture", captured.gm, ctx)
    gm = PassPipeline(passes, callback)(captured.gm, ctx)
    return gm, ctx, captured.report
