"""The torch.fx capture paths: `symbolic`, `specialize` (value carrying + guards), `specialize+leaf`.

`trace_fx` runs the `CaptureTracer` on the flattened inputs and cleans the result: dead code is
removed except in-place methods (`p.unsqueeze_(1)`, whose result is often unused) and guards, and
`x.new_tensor(constant)` (numpy offsets turned into tensors) becomes a plain `constant.to(x)`; traced
in training mode, `F.dropout(x, p, training=self.training)` becomes an `nn.Dropout(p)` that follows
`train()` / `eval()` as the flag did.
While tracing, the patches of `call_nodes.py` (traced factories, opaque calls, buffers indexed by
traced ids, scripted functions run as Python, distributions built from traced values) and, on the
value-carrying paths, of `builtin_queries.py` (`len`, `is_tensor`, `isinstance` of traced tensors,
`torch.finfo` of a traced dtype) are in place, and model code asking `torch.jit.is_tracing()` hears True.
"""
from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F

from dmt_compile.capture.inputs import InputSpec
from dmt_compile.capture.numpy_proxies import numpy_ufunc_proxies
from dmt_compile.capture.call_nodes import (OPAQUE_TORCH_FUNCTIONS, constant_indexed_by_proxy, opaque_torch_calls,
                                            proxy_search_reads_only, scripted_functions_inline, traced_distributions,
                                            traced_factories)
from dmt_compile.capture.builtin_queries import (dtype_infos, tensor_type_checks, traced_len, tracing_checks,
                                                 training_reads)
from dmt_compile.ir.evaluation import no_traced_attributes
from dmt_compile.capture.tracer import CaptureTracer, autograd_function_calls, setitem_proxies, value_proxies
from dmt_compile.ir.batch_dims import input_batch_dim
from dmt_compile.ir.graph import is_impure
from dmt_compile.ir.meta import BATCH_DIM

__all__ = ["trace_fx"]


def _plain_new_tensor(gm: fx.GraphModule) -> bool:
    """`x.new_tensor(c)` with a constant `c` -> `c.to(device=x.device, dtype=x.dtype)` (no copy warning)."""
    changed = False
    for n in list(gm.graph.nodes):
        if n.op == "call_method" and n.target == "new_tensor" and len(n.args) == 2 and not n.kwargs \
                and isinstance(n.args[1], fx.Node) and n.args[1].op == "get_attr":
            x, const = n.args
            with gm.graph.inserting_before(n):
                dtype = gm.graph.call_function(getattr, (x, "dtype"))
                device = gm.graph.call_function(getattr, (x, "device"))
                new = gm.graph.call_method("to", (const,), {"device": device, "dtype": dtype})
            n.replace_all_uses_with(new)
            gm.graph.erase_node(n)
            changed = True
    return changed


def _unmark_wrapped_torch_calls(graph: fx.Graph) -> None:
    """fx marks autowrapped calls `is_wrapped`, and the generated code then registers `fx.wrap(name)` for each
    one; for a torch function the name is its dotted path (`torch.nn.utils.rnn.pack_padded_sequence`), which
    is no global of the generated module, so every later trace in the process failed with a KeyError. The
    mark only serves re-tracing the generated code; capture's tracer wraps these functions itself."""
    for node in graph.nodes:
        if node.op == "call_function" and node.target in OPAQUE_TORCH_FUNCTIONS:
            node.meta.pop("is_wrapped", None)


_FUNCTIONAL_DROPOUTS = {F.dropout: torch.nn.Dropout, F.dropout1d: torch.nn.Dropout1d, F.dropout2d: torch.nn.Dropout2d,
                        F.dropout3d: torch.nn.Dropout3d, F.alpha_dropout: torch.nn.AlphaDropout,
                        F.feature_alpha_dropout: torch.nn.FeatureAlphaDropout}
DROPOUT_ROOT = "dmt_traced"  # submodule holding the dropouts `_mode_following_dropouts` adds


def _mode_following_dropouts(gm: fx.GraphModule) -> bool:
    """`F.dropout(x, p, training=self.training)` traced in training mode holds `training=True`, on in eval
    mode too, so the graph could not reproduce the model's eval output (capture refused the model). Traced
    from a model in training mode whose code read `self.training`, each such call becomes a fresh
    `nn.Dropout(p)` that follows `train()` / `eval()` as the flag did; an always-on dropout (a literal
    `training=True`) makes the model random in eval mode, which capture's check of the graph refuses."""
    added = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target not in _FUNCTIONAL_DROPOUTS:
            continue
        try:
            bound = inspect.signature(node.target).bind(*node.args, **node.kwargs)
        except TypeError:
            continue
        bound.apply_defaults()
        a = bound.arguments
        if a.get("training") is not True or a.get("inplace") or isinstance(a.get("p"), fx.Node):
            continue
        path = f"{DROPOUT_ROOT}.dropout{added}"
        gm.add_submodule(path, _FUNCTIONAL_DROPOUTS[node.target](float(a["p"])))
        with gm.graph.inserting_before(node):
            new = gm.graph.call_module(path, (a["input"],), {})
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
        added += 1
    return added > 0


def _placeholders_with_batch_dims(tracer: CaptureTracer, flat: list[Any], batch: int | None) -> None:
    """Each placeholder gets its input's batch dim (`dmt.batch_dim`, `ir.batch_dims`) as it is created, so the
    guards classify `x.shape[1]` of a field-major `[F, B]` input as the batch size, not a static size."""
    create = tracer.create_args_for_root
    dims = {leaf.name: input_batch_dim(tuple(v.shape), batch) if isinstance(v, torch.Tensor) else None
            for leaf, v in zip(tracer.spec.leaves, flat)}

    def annotated(*args: Any, **kwargs: Any):
        root_fn, root_args = create(*args, **kwargs)
        for proxy in root_args:
            node = getattr(proxy, "node", None)
            if isinstance(node, fx.Node) and node.op == "placeholder" and node.target in dims:
                node.meta[BATCH_DIM] = dims[node.target]
        return root_fn, root_args

    tracer.create_args_for_root = annotated


def trace_fx(model: torch.nn.Module, spec: InputSpec, flat: list[Any], *, carry_values: bool,
             leaves: tuple[str, ...] = (), batch: int | None = None) -> tuple[fx.GraphModule, CaptureTracer]:
    """One fx capture of `model` (already inside the caller's preserved-state context); `batch` is the
    example's batch size (dim 0 of the model's output), for each input's batch dim."""
    tracer = CaptureTracer(spec, flat, carry_values=carry_values, extra_leaves=leaves)
    _placeholders_with_batch_dims(tracer, flat, batch)
    tracer.mode_reads = []  # where model code read `self.training` (the graph holds this mode's branch)
    with traced_factories(tracer), opaque_torch_calls(tracer), proxy_search_reads_only(), setitem_proxies(), \
            autograd_function_calls(tracer), numpy_ufunc_proxies(), constant_indexed_by_proxy(tracer), \
            scripted_functions_inline(), tracing_checks(), traced_distributions(tracer), \
            (value_proxies() if carry_values else contextlib.nullcontext()), \
            (traced_len(tracer) if carry_values else contextlib.nullcontext()), \
            (tensor_type_checks(tracer) if carry_values else contextlib.nullcontext()), \
            (dtype_infos(tracer) if carry_values else contextlib.nullcontext()):
        with no_traced_attributes(model), training_reads(model, tracer.mode_reads):
            graph = tracer.trace(model)
    _unmark_wrapped_torch_calls(graph)
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)
    changed = _plain_new_tensor(gm)
    if model.training and tracer.mode_reads:
        changed = _mode_following_dropouts(gm) or changed
    if gm.graph.eliminate_dead_code(is_impure_node=is_impure) or changed:
        gm.recompile()
    return gm, tracer
