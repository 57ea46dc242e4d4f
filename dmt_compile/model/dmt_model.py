"""`DmtModel`: the transformed model one process holds, with the original model's state names;
`flat_state_dict`: the flat model's state dict from it."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch
import torch.fx as fx

from dmt_compile.capture import CaptureReport
from dmt_compile.capture.inputs import InputSpec
from dmt_compile.errors import CheckpointError
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.module_paths import ADDED_PREFIX
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.ir.table_splits import TableSplits
from dmt_compile.model.portable_graph import PortableGraphModule, clean_types
from dmt_compile.model.state_names import (OriginalState, added_module_names, held_key, rebuilt_layers,
                                           resolve_state_names)
from dmt_compile.topo import Topology

__all__ = ["DmtModel", "flat_state_dict"]


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

    def dump(self, fmt: str = "summary", width: int = 120) -> str:
        """The transformed model in words: "summary" (default: plan, traffic, what was captured and
        rewritten, notes, predicted cost), "full" (+ node table and added modules), "code", "dot", "json"."""
        from dmt_compile.printing import render

        return render(self, fmt, width)

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
                pieces = {p: local[f"graph_module.{p}"] for p in self.state_names.piece_keys()
                          if p.startswith(ADDED_PREFIX)}
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
        try:
            return super().load_state_dict(state, strict=strict, assign=assign)
        except RuntimeError as exc:
            mismatched = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
            if not mismatched:
                raise
            raise CheckpointError(
                f"{len(mismatched)} tensor(s) of the state have other shapes than this transformed model's "
                f"(first: {mismatched[0]}): it was written by a model transformed with other settings (Tower "
                "Module, compression, feed, or a dmt_compile version whose Tower Modules had other shapes)",
                "transform the model with the settings the state was written with, or load the original "
                "tensors only: flat.load_state_dict(sd, strict=False) and transform again") from None

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


def flat_state_dict(dmt: DmtModel, strict: bool = True) -> dict[str, torch.Tensor]:
    """The original model's `state_dict` from a transformed model: exactly its keys, in its order.

    Only a model whose trained function is the flat model's (identity Tower Modules, nothing
    added, nothing rebuilt) converts strictly; the tensors are the transformed model's own. Where
    the compiler added modules (Tower Modules, decoders) or rebuilt layers, the flat model with
    these tensors would compute another function: `CheckpointError` names them;
    `strict=False` returns the original tensors anyway (load with
    `flat.load_state_dict(sd, strict=False)`); `dmt.state_dict()` is the whole state.
    """
    names = dmt.state_names
    added = added_module_names(names)
    if (names.rebuilt or added) and strict:
        parts = ([f"rebuilt layer(s) {', '.join(rebuilt_layers(names))} (their tensors "
                  f"{', '.join(names.rebuilt)} have no counterpart in the flat model)"] if names.rebuilt else []) + \
            ([f"modules the compiler added ({', '.join(added)})"] if added else [])
        raise CheckpointError(
            f"the trained model needs {' and '.join(parts)}: the flat model would compute another function",
            "keep the whole DMT state (dmt.state_dict(), or dmt-compile checkpoint DIR --to-dmt), or take "
            "the original tensors only: flat_state_dict(dmt, strict=False), then "
            "flat.load_state_dict(sd, strict=False)")
    state = dmt.state_dict()
    return {k: state[k] for k in names.original if k in state}
