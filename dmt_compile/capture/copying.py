"""Copy a model for `transform` without ever failing on what a trained model carries around.

`copy.deepcopy` fails on models that keep non-leaf tensors as attributes after a forward pass with
autograd on (attention scores stored on `self`), and on attributes that cannot be copied at all
(locks, open files, generators). `copy_model` tries, in order:

1. `copy.deepcopy(model)`;
2. `deepcopy` with every tensor attribute that is not a parameter or buffer (stale activations)
   detached first — values are kept, the autograd history is dropped;
3. a structural copy: every module object is copied shallowly with its parameters and buffers
   cloned and its submodules copied the same way; any other attribute is shared with the original.
"""
from __future__ import annotations

import copy
from typing import Any

import torch

__all__ = ["copy_model", "stale_tensors"]


def stale_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    """Tensor attributes (also inside lists, tuples and dicts) that are neither parameters nor buffers."""
    found: list[torch.Tensor] = []

    def visit(value: Any, depth: int = 0) -> None:
        if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
            found.append(value)
        elif isinstance(value, (list, tuple)) and depth < 3:
            for v in value:
                visit(v, depth + 1)
        elif isinstance(value, dict) and depth < 3:
            for v in value.values():
                visit(v, depth + 1)

    for module in model.modules():
        for key, value in vars(module).items():
            if key not in ("_parameters", "_buffers", "_modules"):
                visit(value)
    return found


def _structural_copy(module: torch.nn.Module, memo: dict[int, Any]) -> torch.nn.Module:
    if id(module) in memo:
        return memo[id(module)]
    new = copy.copy(module)
    memo[id(module)] = new
    new.__dict__ = {k: (v.detach() if isinstance(v, torch.Tensor) and not v.is_leaf else v)
                    for k, v in module.__dict__.items()}
    new._parameters = {k: (None if p is None else _clone_param(p, memo)) for k, p in module._parameters.items()}
    new._buffers = {k: (None if b is None else memo.setdefault(id(b), b.detach().clone()))
                    for k, b in module._buffers.items()}
    new._modules = {k: (None if m is None else _structural_copy(m, memo)) for k, m in module._modules.items()}
    return new


def _clone_param(p: torch.nn.Parameter, memo: dict[int, Any]) -> torch.nn.Parameter:
    if id(p) not in memo:
        memo[id(p)] = torch.nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
    return memo[id(p)]


def copy_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` that shares no parameter or buffer with it (see the module docstring)."""
    return _script_parameters_as_leaves(_copy(model))


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    try:
        return copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - fall back to the copies below
        pass
    try:
        memo = {id(t): t.detach() for t in stale_tensors(model) if t.grad_fn is not None or not t.is_leaf}
        return copy.deepcopy(model, memo)
    except Exception:  # noqa: BLE001 - fall back to the structural copy
        return _structural_copy(model, {})


def _script_parameters_as_leaves(model: torch.nn.Module) -> torch.nn.Module:
    """`deepcopy` of a TorchScript module clones its parameters *with* autograd history (non-leaf
    tensors: an optimizer refuses them, a second deepcopy fails); detached in place, the copy's C++
    module keeps the same tensor objects, now leaves that train."""
    for module in model.modules() if isinstance(model, torch.nn.Module) else ():
        if isinstance(module, torch.jit.ScriptModule):
            for p in module.parameters():
                if not p.is_leaf:
                    p.detach_().requires_grad_(True)
    return model
