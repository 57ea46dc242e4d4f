"""The torch.export capture path (non-strict), for models the fx paths cannot trace.

`trace_export` exports the model as it is called (`model(*example_inputs, **example_kwargs)`) in
eval mode, with the batch dim of every input dynamic (one shared `batch` dim: dim 0 of a batch-major
input, dim 1 of a field-major `[F, B]` or time-major `[L, B]` one, `ir.batch_dims`); with
`dynamic=False` every shape is static and a guard on the batch size is added (the plan then says
the model is specialised to the example batch). Model code asking `torch.jit.is_tracing()` hears
True, as on the fx paths (builtin_queries.tracing_checks). The exported graph is turned into a plain
GraphModule whose placeholders are capture's flat input leaves (same names and order as the fx
paths) and whose output has the model's own structure, then normalised (`aten_normal`).
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.fx as fx
import torch.utils._pytree as pytree

from dmt_compile.capture.builtin_queries import tracing_checks
from dmt_compile.capture.guards import check_static_dims, dmt_guard
from dmt_compile.capture.inputs import InputSpec, is_tensor_leaf
from dmt_compile.capture.aten_normal import normalize_exported
from dmt_compile.ir.batch_dims import input_batch_dim
from dmt_compile.ir.graph import is_impure, get_attr_value
from dmt_compile.ir.meta import GUARD, INPUT_PATH

__all__ = ["trace_export", "ExportNotApplicable"]


class ExportNotApplicable(Exception):
    """The export path cannot be used for this model (the message says why)."""


def _batch_dim(value: Any, batch: int | None) -> int | None:
    """The dim of a tensor input that carries samples (`ir.batch_dims`: dim 1 of a field-major `[F, B]` or
    time-major `[L, B]` input), or None."""
    return input_batch_dim(tuple(value.shape), batch) if isinstance(value, torch.Tensor) and value.dim() else None


def _dynamic_shapes(args: tuple, kwargs: dict, batch: int | None):
    dim = torch.export.Dim("batch", min=2)

    def spec(value: Any):
        at = _batch_dim(value, batch)
        return None if at is None else {at: dim}

    return pytree.tree_map(spec, args), pytree.tree_map(spec, kwargs)


def _export(model: torch.nn.Module, args: tuple, kwargs: dict, batch: int | None, dynamic: bool):
    if not dynamic:
        return torch.export.export(model, args, kwargs, strict=False)
    dyn_args, dyn_kwargs = _dynamic_shapes(args, kwargs, batch)
    params = list(inspect.signature(model.forward).parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params) and not kwargs:
        dynamic_shapes: Any = tuple(dyn_args)
    else:
        dynamic_shapes = {**dict(zip([p.name for p in params], dyn_args)), **dyn_kwargs}
    return torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes, strict=False)


def _flat_graph(ep_module: fx.GraphModule, spec: InputSpec, flat: list[Any], call: tuple) -> fx.Graph:
    """The exported graph with capture's flat placeholders and the model's output structure."""
    exported = [n for n in ep_module.graph.nodes if n.op == "placeholder"]
    leaves = [v for v in pytree.tree_leaves(call) if is_tensor_leaf(v)]
    if len(leaves) != len(exported) or len(leaves) != len(flat):
        raise ExportNotApplicable(f"the exported program takes {len(exported)} tensor inputs, "
                                  f"the model's call has {len(flat)}")
    graph = fx.Graph()
    mine = []
    for leaf in spec.leaves:
        p = graph.placeholder(leaf.name)
        p.meta[INPUT_PATH] = leaf.display
        mine.append(p)
    position = {id(v): i for i, v in enumerate(flat)}
    env: dict[fx.Node, fx.Node] = {old: mine[position[id(v)]] for old, v in zip(exported, leaves)}
    out = graph.graph_copy(ep_module.graph, env)
    for old, new in env.items():  # export's meta (fake values, module stacks) holds unpicklable weak references
        if old.op != "placeholder":
            new.meta = {}
    out_spec = getattr(ep_module, "_out_spec", None)
    graph.output(pytree.tree_unflatten(list(out), out_spec) if out_spec is not None else out)
    return graph


def _batch_guard(graph: fx.Graph, spec: InputSpec, flat: list[Any], batch: int | None) -> None:
    """Static export: only the example batch size can run; other sizes get a typed error, not a wrong answer."""
    index = next((i for i, v in enumerate(flat) if _batch_dim(v, batch) is not None), None)
    if index is None:
        return
    placeholder = [n for n in graph.nodes if n.op == "placeholder"][index]
    with graph.inserting_after(placeholder):
        size = graph.call_method("size", (placeholder, _batch_dim(flat[index], batch)))
    with graph.inserting_after(size):
        where = f"torch.export with static shapes ({spec.leaves[index].display})"
        guard = graph.call_function(dmt_guard, (size, "int", batch, where, "batch"))
    guard.meta[GUARD] = f"batch size == {batch}"


def _static_dims_guards(graph: fx.Graph, spec: InputSpec, flat: list[Any], batch: int | None) -> None:
    """Every input's fixed sizes checked on each call (`guards.check_static_dims`): the batch dim of an input
    (`_batch_dim`) is left to the export (free when dynamic, `_batch_guard` when static), every other size
    is the example's."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    for index, (node, value) in enumerate(zip(placeholders, flat)):
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            continue
        free = _batch_dim(value, batch)
        if free is not None and value.dim() == 1:
            continue
        expected = tuple(None if d == free else s for d, s in enumerate(value.shape))
        with graph.inserting_after(node):
            check = graph.call_function(check_static_dims, (node, expected, spec.leaves[index].display))
        check.meta[GUARD] = "sizes == " + str(expected)


def trace_export(model: torch.nn.Module, spec: InputSpec, flat: list[Any], example_inputs: tuple,
                 example_kwargs: dict, batch: int | None, *, dynamic: bool) -> tuple[fx.GraphModule, str]:
    """(GraphModule, a note for the capture report); raises ExportNotApplicable or torch's export errors."""
    if any(not isinstance(v, torch.Tensor) for v in flat):
        raise ExportNotApplicable("torchrec jagged inputs export with specialised lengths; the fx paths handle them")
    with tracing_checks():  # model code's `torch.jit.is_tracing()` checks are skipped, as on the fx paths
        ep = _export(model, tuple(example_inputs), dict(example_kwargs), batch, dynamic)
    ep_module = ep.module()
    graph = _flat_graph(ep_module, spec, flat, (tuple(example_inputs), dict(example_kwargs)))
    values = {n: get_attr_value(ep_module, n.target) for n in graph.nodes if n.op == "get_attr"}
    modules = normalize_exported(graph, values, model)
    if not dynamic:
        _batch_guard(graph, spec, flat, batch)
    _static_dims_guards(graph, spec, flat, batch)
    root: dict[str, Any] = dict(modules)
    for n in graph.nodes:
        if n.op == "get_attr" and n.target not in root:
            root[n.target] = values[n] if n in values else get_attr_value(ep_module, n.target)
    gm = fx.GraphModule(root, graph, type(model).__name__)
    gm.graph.eliminate_dead_code(is_impure_node=is_impure)
    gm.recompile()
    note = "dynamic batch dimension" if dynamic else f"static shapes: specialised to the example batch of {batch}"
    return gm, note
