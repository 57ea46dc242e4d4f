"""Capture an arbitrary model as a flat-input fx GraphModule, falling back automatically.

Paths, in order (see docs/DESIGN.md): `symbolic`, `specialize`, `specialize+leaf`. The first
path whose graph reproduces the eager model on the example inputs wins; `CaptureReport` says
which path, what was specialised and which modules became leaves.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import CaptureError, InputError
from dmt_compile.capture.inputs import InputSpec, flatten_call
from dmt_compile.ir.shapes import record_shapes, tree_max_abs_diff
from dmt_compile.capture.tracer import CaptureTracer, Specialization, contains_embedding, value_proxies

__all__ = ["capture", "Captured", "CaptureReport"]

log = logging.getLogger(__name__)
MAX_AUTO_LEAVES = 16


@dataclass(frozen=True)
class CaptureReport:
    path: str
    specializations: tuple[Specialization, ...] = ()
    auto_leaves: tuple[str, ...] = ()
    attempts: tuple[str, ...] = ()  # "path: why it failed" for paths tried before

    def __str__(self) -> str:
        lines = [f"capture path: {self.path}"]
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


@contextlib.contextmanager
def _preserved(model: torch.nn.Module):
    """Run model code without changing it: buffers, RNG state and training flags are restored."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    modes = {name: m.training for name, m in model.named_modules()}
    rng = torch.get_rng_state()
    try:
        with torch.no_grad():
            yield
    finally:
        torch.set_rng_state(rng)
        for name, m in model.named_modules():
            m.training = modes[name]
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers and b.shape == buffers[name].shape:
                    b.copy_(buffers[name])


def _trace(model, spec, flat, *, carry_values: bool, leaves) -> tuple[fx.GraphModule, CaptureTracer]:
    tracer = CaptureTracer(spec, flat, carry_values=carry_values, extra_leaves=leaves)
    with _preserved(model), (value_proxies() if carry_values else contextlib.nullcontext()):
        graph = tracer.trace(model)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    if gm.graph.eliminate_dead_code():
        gm.recompile()
    return gm, tracer


def _eager_reference(model, args, kwargs):
    with _preserved(model):
        model.eval()
        try:
            return model(*args, **kwargs)
        except Exception as exc:
            raise InputError(
                f"the model does not run on example_inputs: {type(exc).__name__}: {exc}",
                "pass example_inputs that the original model accepts, as a tuple of positional inputs",
            ) from exc


def _check_graph(model, gm, flat, reference) -> None:
    with _preserved(model):
        model.eval()
        gm.eval()
        out = gm(*flat)
    diff = tree_max_abs_diff(out, reference)
    if diff is None:
        raise CaptureError("the captured graph returns a different output structure than the model")
    if diff > 1e-5:
        raise CaptureError(f"the captured graph differs from the eager model (max |diff| = {diff:.3g})")


def capture(model: torch.nn.Module, example_inputs: tuple, example_kwargs: dict | None = None) -> Captured:
    """Capture `model` called as `model(*example_inputs, **example_kwargs)`."""
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}", "pass an nn.Module")
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,)
    spec, flat = flatten_call(model.forward, example_inputs, example_kwargs)
    reference = _eager_reference(model, example_inputs, example_kwargs or {})
    attempts: list[str] = []

    def attempt(path: str, carry: bool, leaves: tuple[str, ...]) -> Captured | None:
        try:
            gm, tracer = _trace(model, spec, flat, carry_values=carry, leaves=leaves)
            _check_graph(model, gm, flat, reference)
        except Exception as exc:  # noqa: BLE001 - every failure is reported in the CaptureError
            attempts.append(f"{path}: {type(exc).__name__}: {_short(exc)}")
            attempt.last_exc = exc  # type: ignore[attr-defined]
            return None
        report = CaptureReport(path, tuple(tracer.specializations), leaves, tuple(attempts))
        record_shapes(gm, flat)
        log.info("%s", report)
        return Captured(gm, spec, flat, report, reference)

    done = attempt("symbolic", False, ()) or attempt("specialize", True, ())
    leaves: tuple[str, ...] = ()
    while done is None and len(leaves) < MAX_AUTO_LEAVES:
        path = getattr(attempt.last_exc, "_dmt_module_path", None)  # type: ignore[attr-defined]
        if not path or path in leaves or contains_embedding(model.get_submodule(path)):
            break
        leaves = leaves + (path,)
        done = attempt("specialize+leaf", True, leaves)
    if done is None:
        raise CaptureError(
            "the model could not be captured as a graph:\n    " + "\n    ".join(attempts),
            "make the failing code traceable (it must not depend on tensor values in a module that "
            "holds embedding tables), or move it into a submodule without embeddings",
        )
    return done


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def copy_model(model: torch.nn.Module) -> torch.nn.Module:
    """Deep copy so transform never aliases or mutates the user's model."""
    try:
        return copy.deepcopy(model)
    except Exception as exc:
        raise InputError(
            f"the model cannot be deep-copied ({type(exc).__name__}: {exc})",
            "pass inplace=True to transform to rewrite the model's modules in place",
        ) from exc
