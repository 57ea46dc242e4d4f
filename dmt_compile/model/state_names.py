"""The names of a transformed model's state: the original model's name for every original tensor.

`transform` works on its own copy of the model, so every tensor of the rewritten graph module can
be traced back *by identity* to the original model's `state_dict` entry it came from.
`OriginalState` records the original names (and, through the pipeline callback, which tensors the
captured graph used); `resolve_state_names` then sorts every tensor into one of:

* **kept** — the graph still holds the same tensor, at the same path or under an alias (a torchrec
  sub-collection sharing the table): saved and loaded under the original name.
* **held** — the captured graph never used it (a parameter the forward ignores, a buffer folded
  into a constant): `DmtModel` keeps it beside the graph, so its state stays complete.
* **rebuilt** — the captured graph used it, but the rewrite replaced the layer: there is no
  original value any more (`flat_state_dict` refuses, naming the layers).
* **added** — parameters and buffers of modules the compiler added, under the `dmt.` prefix.
* **hidden** — graph constants (`_tensor_constant*`, non-persistent buffers): not in the state
  dict, as torch does for constants.
* **split** — a table `split-tables` cut into one table per field (`dmt.split_*` pieces): the state
  dict shows it whole under its original name (rebuilt from the pieces), and loading a whole table
  cuts it back into the pieces; distributed checkpoints keep the pieces (`piece_keys`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.fx as fx

from dmt_compile.ir.module_paths import ADDED_PREFIX

__all__ = ["OriginalState", "StateNames", "resolve_state_names", "held_key", "rebuilt_layers", "added_module_names"]



def held_key(name: str) -> str:
    """The attribute name under which `DmtModel.held_state` keeps an original tensor."""
    return name.replace(".", "__")


class OriginalState:
    """The original model's state, recorded by identity before the pipeline runs (see module docstring)."""

    def __init__(self, model: torch.nn.Module):
        is_module = isinstance(model, torch.nn.Module)  # capture refuses anything else, with a typed error
        self.tensors: dict[str, torch.Tensor] = dict(model.state_dict(keep_vars=True)) if is_module else {}
        self.module_ids = {id(m) for m in model.modules()} if is_module else set()
        self.captured: set[int] | None = None  # ids of the tensors the captured graph holds

    def wrap(self, callback: Callable | None) -> Callable:
        """A pipeline callback that records the captured graph's tensors, then calls `callback`."""
        def record(index: int, name: str, gm: fx.GraphModule, ctx: Any) -> None:
            if index == 0:
                self.captured = {id(t) for t in gm.state_dict(keep_vars=True).values()}
            if callback is not None:
                callback(index, name, gm, ctx)

        return record


@dataclass(frozen=True)
class StateNames:
    """Where each state-dict key of a `DmtModel` lives (module docstring)."""

    keys: tuple[str, ...]  # state-dict keys, in order: the original model's, then the added ones
    path: Mapping[str, str]  # key -> graph-module path (kept and added keys)
    aliases: Mapping[str, tuple[str, ...]]  # key -> other graph-module paths of the same tensor
    held: tuple[str, ...]  # original keys kept beside the graph (DmtModel.held_state)
    held_buffers: frozenset[str]
    rebuilt: tuple[str, ...]  # original keys whose layer the rewrite replaced
    hidden: tuple[str, ...]  # graph-module paths left out of the state dict (constants)
    original: tuple[str, ...]  # the original model's state-dict keys, in its order
    split: Mapping[str, Any] = field(default_factory=dict)  # original table key -> its TableSplit

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k not in set(self.original))

    def piece_keys(self) -> tuple[str, ...]:
        """The keys with the split tables replaced by their pieces (the tensors the graph really holds)."""
        out: list[str] = []
        for key in self.keys:
            out += [p.parameter for p in self.split[key].pieces] if key in self.split else [key]
        return tuple(out)

    def targets(self, key: str) -> list[str]:
        """Paths relative to the DmtModel that hold `key` (graph module and aliases, or the held state)."""
        if key in self.split:
            return [f"graph_module.{p.parameter}" for p in self.split[key].pieces]
        if key in self.path:
            return [f"graph_module.{p}" for p in (self.path[key], *self.aliases.get(key, ()))]
        return [f"held_state.{held_key(key)}"]


def _owner(gm: fx.GraphModule, path: str) -> Any:
    prefix = path.rpartition(".")[0]
    return gm.get_submodule(prefix) if prefix else gm


def _added_module(gm: fx.GraphModule, owner: Any, path: str, originals: OriginalState) -> bool:
    """True when `owner` (holding the buffer at `path`) is a module the compiler added.

    Not the graph module itself (constants) and not an original module; fx's own path containers
    (plain `nn.Module`s it creates for dotted attribute paths) hold original buffers.
    """
    if path.startswith(ADDED_PREFIX):
        return True
    return owner is not gm and id(owner) not in originals.module_ids and type(owner) is not torch.nn.Module


def resolve_state_names(gm: fx.GraphModule, originals: OriginalState | None, splits: Any = None
                        ) -> tuple[StateNames, dict[str, torch.Tensor]]:
    """(the names, the original tensors to hold beside the graph) for a rewritten graph module.

    `splits` (`ir.table_splits.TableSplits`) names the tables split per field: neither rebuilt nor held.
    """
    split = {s.table: s for s in getattr(splits, "splits", ())}
    state = gm.state_dict(keep_vars=True)
    if originals is None:  # built without a record: the graph's own names are the names
        originals = OriginalState(torch.nn.Module())
        originals.tensors = {p: t for p, t in state.items() if not p.startswith(ADDED_PREFIX)
                             and not p.rpartition(".")[2].startswith("_tensor_constant")}
    by_id: dict[int, list[str]] = {}
    for p, t in state.items():
        by_id.setdefault(id(t), []).append(p)
    path, aliases, held, rebuilt, claimed = {}, {}, [], [], set()
    for key, tensor in originals.tensors.items():
        paths = by_id.get(id(tensor))
        if key in split:
            continue
        if paths:
            main = key if key in paths else paths[0]
            path[key] = main
            aliases[key] = tuple(p for p in paths if p != main)
            claimed.update(paths)
        elif originals.captured is not None and id(tensor) in originals.captured:
            rebuilt.append(key)
        else:
            held.append(key)
    keys = [k for k in originals.tensors if k not in rebuilt]
    for table_split in split.values():  # the pieces are the whole table's state, not added tensors
        claimed.update(piece.parameter for piece in table_split.pieces)
    hidden = []
    for p, t in state.items():
        if p in claimed:
            continue
        owner = _owner(gm, p)
        if isinstance(t, torch.nn.Parameter) or _added_module(gm, owner, p, originals):
            key = p if p.startswith(ADDED_PREFIX) else ADDED_PREFIX + p
            path[key] = p
            aliases[key] = ()
            keys.append(key)
        else:
            hidden.append(p)
    held_buffers = frozenset(k for k in held if not isinstance(originals.tensors[k], torch.nn.Parameter))
    names = StateNames(tuple(keys), path, {k: v for k, v in aliases.items() if v}, tuple(held), held_buffers,
                       tuple(rebuilt), tuple(hidden), tuple(originals.tensors), split)
    return names, {k: originals.tensors[k] for k in held}


def rebuilt_layers(names: StateNames) -> list[str]:
    """The layers (module paths) whose tensors the rewrite replaced, each once."""
    return sorted({k.rpartition(".")[0] or k for k in names.rebuilt})


def added_module_names(names: StateNames) -> list[str]:
    """The modules the compiler added (Tower Modules, decoders, rebuilt layers), each once."""
    return sorted({k.rpartition(".")[0] or k for k in names.added})

