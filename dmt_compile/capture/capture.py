"""Capture an arbitrary model as a flat-input fx GraphModule, falling back automatically.

Paths, in order (see docs/DESIGN.md): `symbolic`, `specialize`, `specialize+leaf`, `export`
(torch.export, non-strict, dynamic batch) and `export-static`. The first path whose graph
reproduces the eager model on the example inputs wins; `CaptureReport` says which path, why the
earlier ones were skipped, what was specialised (and guarded) and which modules became leaves.
"""
from __future__ import annotations

import logging
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.fx as fx

from dmt_compile.capture.code_origin import is_torch_or_own_file
from dmt_compile.capture.export_path import ExportNotApplicable, trace_export
from dmt_compile.capture.fx_trace import trace_fx
from dmt_compile.capture.indexed_tables import lift_indexed_tables
from dmt_compile.capture.inputs import InputSpec, flatten_call
from dmt_compile.capture.preconditions import IdWatch, check_calibration, watched_run
from dmt_compile.capture.tracer import Specialization, contains_embedding
from dmt_compile.capture.unregistered import adopt_unregistered_modules
from dmt_compile.errors import CaptureError, InputError
from dmt_compile.ir.evaluation import preserved
from dmt_compile.ir.shapes import output_batch_size, record_shapes, tree_max_abs_diff

__all__ = ["capture", "Captured", "CaptureReport", "PATHS"]

log = logging.getLogger(__name__)
MAX_AUTO_LEAVES = 16
PATHS = ("symbolic", "specialize", "specialize+leaf", "export", "export-static")


@dataclass(frozen=True)
class CaptureReport:
    path: str
    specializations: tuple[Specialization, ...] = ()
    auto_leaves: tuple[str, ...] = ()
    attempts: tuple[str, ...] = ()  # "path: why it failed" for paths tried before
    note: str = ""  # e.g. how torch.export treated the batch dimension
    unwrapped: tuple[str, ...] = ()  # wrappers taken off the model (capture/wrappers.py), outermost first

    @property
    def guards(self) -> tuple[Specialization, ...]:
        return tuple(s for s in self.specializations if s.guarded)

    def __str__(self) -> str:
        lines = [f"capture path: {self.path}" + (f" ({self.note})" if self.note else "")]
        lines += [f"  unwrapped: {w} (its module is captured)" for w in self.unwrapped]
        lines += [f"  tried first: {a}" for a in self.attempts]
        lines += [f"  leaf (automatic): {leaf}" for leaf in self.auto_leaves]
        lines += [f"  specialised: {s}" for s in self.specializations]
        return "\n".join(lines)


@dataclass
class Captured:
    gm: fx.GraphModule
    spec: InputSpec
    flat_inputs: list[Any]
    report: CaptureReport
    reference_output: Any = field(repr=False, default=None)


def _eager_reference(model, args, kwargs, watch: IdWatch):
    """The model's output on the example inputs: its one eager run, every lookup's ids checked on the way."""
    with preserved(model):
        model.eval()
        try:
            return watched_run(model, args, kwargs, watch)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"the model does not run on example_inputs: {type(exc).__name__}: {exc}",
                "pass example_inputs that the original model accepts, as a tuple of positional inputs",
            ) from exc


def _check_graph(model, gm: fx.GraphModule, flat, reference) -> None:
    with preserved(model):
        model.eval()
        gm.eval()
        out = gm.forward(*flat)  # .forward: fx's __call__ prints a traceback to stderr on failure
    diff = tree_max_abs_diff(out, reference)
    if diff is None:
        raise CaptureError("the captured graph returns a different output structure than the model")
    if diff > 1e-5:
        raise CaptureError(f"the captured graph differs from the eager model (max |diff| = {diff:.3g})")


def _batch_of(reference: Any) -> int | None:
    return output_batch_size(reference)


def _short(exc: BaseException) -> str:
    text = [line for line in str(exc).strip().splitlines() if line.strip()]
    return text[0][:200] if text else ""


def _user_location(exc: BaseException) -> str:
    """` at file.py:line in fn: code` of the innermost frame of the model's own code that raised, or ""."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        name = frame.filename.replace("\\", "/")
        if is_torch_or_own_file(name) or any(part in name for part in ("/numpy/", "/python3.", "<")):
            continue
        code = f": {frame.line.strip()}" if frame.line else ""
        return f" at {name.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}{code}"
    return ""


class _Attempts:
    """Tries capture paths in order and remembers why each one failed."""

    def __init__(self, model, spec, flat, reference):
        self.model, self.spec, self.flat, self.reference = model, spec, flat, reference
        self.failed: list[str] = []
        self.last_exc: BaseException | None = None
        self.mode_reads: dict[str, None] = {}  # where model code read `self.training` while traced
        self.training = model.training

    def run(self, path: str, build: Callable[[], tuple[fx.GraphModule, tuple, str]],
            leaves: tuple[str, ...] = (), spec: InputSpec | None = None) -> Captured | None:
        try:
            with preserved(self.model):
                gm, specializations, note = build()
            _check_graph(self.model, gm, self.flat, self.reference)
        except Exception as exc:  # noqa: BLE001 - every failure is reported in the CaptureError
            self.failed.append(f"{path}: {type(exc).__name__}: {_short(exc)}{_user_location(exc)}")
            self.last_exc = exc
            return None
        record_shapes(gm, self.flat)
        gm, note = self._lift_tables(gm, build, note)
        report = CaptureReport(path, specializations, leaves, tuple(self.failed), note)
        log.info("%s", report)
        return Captured(gm, spec or self.spec, self.flat, report, self.reference)

    def _lift_tables(self, gm: fx.GraphModule, build: Callable, note: str) -> tuple[fx.GraphModule, str]:
        """Parameter tables read at integer ids become `F.embedding` lookups (capture/indexed_tables.py);
        where the rewritten graph no longer reproduces the model (negative ids), the traced one stays."""
        lifted = lift_indexed_tables(gm)
        if not lifted:
            return gm, note
        try:
            _check_graph(self.model, gm, self.flat, self.reference)
        except Exception as exc:  # noqa: BLE001 - keep the graph as traced, say why
            with preserved(self.model):
                gm = build()[0]
            record_shapes(gm, self.flat)
            why = f"parameter tables read at ids kept as indexing ({type(exc).__name__}: {_short(exc)})"
            return gm, "; ".join(filter(None, [note, why]))
        record_shapes(gm, self.flat)
        return gm, "; ".join(filter(None, [note, "read at ids, as embedding lookups: " + ", ".join(lifted)]))

    def fx(self, path: str, carry: bool, leaves: tuple[str, ...] = ()) -> Captured | None:
        def build():
            gm, tracer = trace_fx(self.model, self.spec, self.flat, carry_values=carry, leaves=leaves,
                                  batch=_batch_of(self.reference))
            self.mode_reads.update(dict.fromkeys(tracer.mode_reads))
            return gm, tuple(tracer.specializations), ""
        return self.run(path, build, leaves)

    def export(self, path: str, args: tuple, kwargs: dict, dynamic: bool) -> Captured | None:
        def build():
            self.model.eval()
            gm, note = trace_export(self.model, self.spec, self.flat, args, kwargs, _batch_of(self.reference),
                                    dynamic=dynamic)
            if self.training and self.mode_reads:  # say which branch a model in training mode got
                note = "; ".join(filter(None, [note, "traced in eval mode although the model is in training mode: "
                                               "forward branches on self.training (" + ", ".join(self.mode_reads)
                                               + "), and the graph holds the eval-mode branch"]))
            return gm, (), note
        # torch.export bakes int inputs into its graph: a batch-size int is a constant of that graph's spec
        return self.run(path, build, spec=self.spec.with_constant_batch_ints())


def capture(model: torch.nn.Module, example_inputs: tuple, example_kwargs: dict | None = None,
            paths: tuple[str, ...] = PATHS, calibration: Sequence[Any] | None = None) -> Captured:
    """Capture `model` called as `model(*example_inputs, **example_kwargs)`, trying `paths` in order.

    First contact: the inputs are flattened once and the model runs eagerly once (the reference
    output), with the ids of every lookup checked against its table, then those of `calibration`.
    """
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}", "pass an nn.Module")
    unknown = [p for p in paths if p not in PATHS]
    if unknown or not paths:
        raise InputError(f"unknown capture paths {unknown}", "choose from " + ", ".join(PATHS))
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    kwargs = dict(example_kwargs or {})
    adopt_unregistered_modules(model)  # modules in plain dicts/lists: fx and detection need their names
    spec, flat = flatten_call(model.forward, example_inputs, kwargs)
    watch = IdWatch(model, flat, spec, "example inputs", renormalise=True)
    attempts = _Attempts(model, spec, flat, _eager_reference(model, example_inputs, kwargs, watch))
    check_calibration(model, spec, watch, calibration)
    done = None
    for path in paths:
        if path == "specialize+leaf":
            done = _with_auto_leaves(model, attempts)
        elif path.startswith("export"):
            done = attempts.export(path, example_inputs, kwargs, dynamic=path == "export")
        else:
            done = attempts.fx(path, path == "specialize")
            if done is not None and path == "specialize":
                done = _batch_guards_as_leaves(model, attempts, done)
        if done is not None:
            return done
    if model.training and attempts.mode_reads:
        raise CaptureError(
            "the model could not be captured as a graph: its forward branches on self.training ("
            + ", ".join(attempts.mode_reads) + "), so the graph traced in training mode holds the training "
            "branch, which does not reproduce the model's eval-mode output; " + "; ".join(attempts.failed),
            "transform the model in eval mode (model.eval()): the rewrite then holds the eval-mode branch "
            "only, so train the original model where the training branch matters",
        )
    raise CaptureError(
        "the model could not be captured as a graph: " + "; ".join(attempts.failed),
        "make the failing code traceable (it must not depend on tensor values in a module that "
        "holds embedding tables), or move it into a submodule without embeddings",
    )


def _batch_guards_as_leaves(model: torch.nn.Module, attempts: _Attempts, done: Captured) -> Captured:
    """Python that follows the batch size inside a submodule without embeddings (ghost batch norm's
    `x.chunk(int(np.ceil(x.shape[0] / vbs)))`: the number of pieces) is guarded, so the graph runs only at
    batch sizes that give the example's answer. Such submodules become leaves, called as they are, and
    the graph runs at every batch size; `done` stands when that graph does not reproduce the model."""
    leaves = tuple(dict.fromkeys(
        s.module for s in done.report.specializations if s.guarded and s.dependence == "batch" and s.module
        and s.module not in done.report.auto_leaves and not contains_embedding(model.get_submodule(s.module))))
    if not leaves:
        return done
    return attempts.fx("specialize+leaf", True, done.report.auto_leaves + leaves) or done


def _with_auto_leaves(model: torch.nn.Module, attempts: _Attempts) -> Captured | None:
    """Make the innermost submodule that failed a leaf (if it holds no embedding) and trace again."""
    leaves: tuple[str, ...] = ()
    while len(leaves) < MAX_AUTO_LEAVES:
        path = getattr(attempts.last_exc, "_dmt_module_path", None)
        if not path or path in leaves or contains_embedding(model.get_submodule(path)):
            return None
        leaves = leaves + (path,)
        done = attempts.fx("specialize+leaf", True, leaves)
        if done is not None:
            return done
    return None
