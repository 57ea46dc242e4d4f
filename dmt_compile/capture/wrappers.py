"""Models handed to `transform` inside a wrapper that only changes *how* they run, not *what* they
compute: `torch.compile(model)` (an `OptimizedModule` holding `_orig_mod`), `nn.DataParallel` and
`DistributedDataParallel` (holding `module`). The rewrite captures the wrapped module: tracing the
compiled wrapper runs Dynamo inside fx and fails, and data parallelism is what DMT replaces (its
runtime synchronises the dense parameters itself). A TorchScript model (`torch.jit.script(model)`)
has no Python `forward` left to capture; it is refused with the fix.
"""
from __future__ import annotations

from typing import Any

import torch

from dmt_compile.errors import InputError

__all__ = ["unwrap_model"]


def _wrapped(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    compiled = getattr(torch, "_dynamo", None) and getattr(torch._dynamo.eval_frame, "OptimizedModule", None)
    if compiled is not None and isinstance(model, compiled):
        return model._orig_mod, "torch.compile"
    if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
        return model.module, type(model).__name__
    return None


def unwrap_model(model: Any) -> tuple[Any, tuple[str, ...]]:
    """(the module to capture, the wrappers taken off it, outermost first)."""
    taken: list[str] = []
    while isinstance(model, torch.nn.Module) and (inner := _wrapped(model)) is not None:
        model, what = inner
        taken.append(what)
    if isinstance(model, torch.jit.ScriptModule):
        raise InputError(
            "the model is a TorchScript module (torch.jit.script / torch.jit.trace): it has no Python forward "
            "to capture", "pass the nn.Module before scripting it (script submodules are kept as they are)")
    return model, tuple(taken)
