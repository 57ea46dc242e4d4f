"""Register the modules a model keeps in plain Python containers, so capture sees their tables.

`nn.Module.__setattr__` registers a module assigned to an attribute, and `nn.ModuleList` /
`nn.ModuleDict` register the modules they hold; a plain `dict`, `list` or `tuple` of modules does
not (PyTorch's documentation of `nn.ModuleDict`: "modules it contains are properly registered, and
will be visible by all Module methods"). A model that keeps its `nn.Embedding` tables in a plain dict
still calls them in `forward`, but they are missing from `named_modules()` and `parameters()`: fx
cannot name them (`call_module` needs a path), the automatic-leaf fallback sees no embedding in the
module that holds them, and detection finds no table.

`adopt_unregistered_modules(model)` walks every module's instance attributes (`vars(module)`, the
registries `_modules`, `_parameters`, `_buffers` left out) and registers each module found in a plain
dict, list or tuple (one level deep) and not already registered anywhere in the model as a submodule
of its holder, named `<attribute>_<key or index>` (prefixed `_dmt_`). The container keeps the same
object, so `forward` is unchanged and calls the now-registered module. A side effect the caller
accepts: those modules' parameters join `parameters()` -- the rewritten model owns and trains every
table it shards, where the original left them out of its optimizer's view.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch

__all__ = ["adopt_unregistered_modules"]

_REGISTRIES = ("_modules", "_parameters", "_buffers")


def _held(value: Any) -> Iterator[tuple[str, torch.nn.Module]]:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if isinstance(item, torch.nn.Module):
            yield str(key), item


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def adopt_unregistered_modules(model: torch.nn.Module) -> list[str]:
    """Register modules held in plain containers; returns their new qualified names (empty: none).

    Anything but a module instance is left for the caller's input check to refuse with its message."""
    if not isinstance(model, torch.nn.Module):
        return []
    adopted: list[str] = []
    while True:  # an adopted module may hold plain containers of its own
        registered = {id(m) for m in model.modules()}
        found = False
        for path, holder in list(model.named_modules()):
            for attr, value in list(vars(holder).items()):
                if attr in _REGISTRIES or attr.startswith("_dmt_"):
                    continue
                for key, module in _held(value):
                    if id(module) in registered:
                        continue
                    name = _safe(f"_dmt_{attr}_{key}")
                    while name in holder._modules:
                        name += "_"
                    holder.add_module(name, module)
                    registered.add(id(module))
                    adopted.append(f"{path}.{name}" if path else name)
                    found = True
        if not found:
            return adopted
