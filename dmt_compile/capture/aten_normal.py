"""Normal form of a graph captured by torch.export: aten calls lifted back to the model's modules.

An exported graph is made of aten ops on parameters (`aten.embedding(weight, ids)`,
`aten.linear(x, w, b)`). The rest of the compiler reads module-level graphs, so:

* an aten call whose parameters all belong to one module of the original model of a known kind
  becomes a `call_module` of that very module (`nn.Embedding`, `nn.Linear`, `nn.LayerNorm`,
  BatchNorm), which also makes BatchNorm follow `train()`/`eval()` again;
* other lookups become `F.embedding` calls on the weight; a bag (`aten.embedding_bag` in its three
  spellings, a 4-tuple of which the model reads the pooled item 0) becomes one `F.embedding_bag` on
  the flat ids and offsets export computed, where nothing reads the other three items;
* `aten.dropout(x, p, train=False)` (the model was exported in eval mode) becomes a fresh
  `nn.Dropout(p)` so it follows `train()`/`eval()`; an always-on dropout (`train=True`) stays;
* structural ops become their torch spelling (`torch.cat`, `torch.stack`, `x.view(...)`,
  `x.select(...)`, `x[:, a:b]`, `x + y`, ...), which detection and feed analysis understand;
* export's own checks (`_guards_fn`, `_assert_tensor_metadata`) are dropped.
"""
from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.fx as fx
import torch.nn.functional as F

__all__ = ["normalize_exported", "EXPORT_ROOT"]

aten = torch.ops.aten
EXPORT_ROOT = "dmt_export"  # submodule holding modules the normalisation adds (dropouts)
_BIG = 2**62


def _arg(node: fx.Node, i: int, name: str, default: Any) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _method(name: str) -> Callable:
    def build(graph: fx.Graph, node: fx.Node):
        return graph.call_method(name, tuple(node.args), dict(node.kwargs))
    return build


def _function(fn: Callable) -> Callable:
    def build(graph: fx.Graph, node: fx.Node):
        return graph.call_function(fn, tuple(node.args), dict(node.kwargs))
    return build


def _binary(fn: Callable) -> Callable:
    def build(graph: fx.Graph, node: fx.Node):
        if node.kwargs.get("alpha", 1) != 1 or len(node.args) != 2:
            return None
        return graph.call_function(fn, tuple(node.args), {})
    return build


def _slice(graph: fx.Graph, node: fx.Node):
    x, dim = node.args[0], _arg(node, 1, "dim", 0)
    start, end, step = _arg(node, 2, "start", None), _arg(node, 3, "end", None), _arg(node, 4, "step", 1)
    if not all(v is None or isinstance(v, int) for v in (start, end, step)) or not isinstance(dim, int) or dim < 0:
        return None
    end = None if isinstance(end, int) and end >= _BIG else end
    start = None if start == 0 else start
    index = (slice(None),) * dim + (slice(start, end, None if step == 1 else step),)
    return graph.call_function(operator.getitem, (x, index))


def _to(graph: fx.Graph, node: fx.Node):
    dtype = node.kwargs.get("dtype", node.args[1] if len(node.args) > 1 and isinstance(node.args[1], torch.dtype)
                            else None)
    if dtype is None:
        return None
    return graph.call_method("to", (node.args[0], dtype))


def _embedding(graph: fx.Graph, node: fx.Node):
    weight, ids = node.args[0], node.args[1]
    padding = _arg(node, 2, "padding_idx", -1)
    return graph.call_function(F.embedding, (ids, weight), {
        "padding_idx": None if padding == -1 else padding, "scale_grad_by_freq": _arg(node, 3, "scale_grad_by_freq", False),
        "sparse": _arg(node, 4, "sparse", False)})


_BAGS = (aten.embedding_bag.default, aten.embedding_bag.padding_idx, aten._embedding_bag.default)
_BAG_MODES = ("sum", "mean", "max")


def _embedding_bag(graph: fx.Graph, node: fx.Node):
    """`F.embedding_bag(ids, weight, offsets, ...)` for the pooled item of an exported bag; its getitem
    users are rewired and erased here, so the bag node itself is left without users."""
    users = list(node.users)
    if not users or any(u.op != "call_function" or u.target is not operator.getitem or (u.args[1] != 0 and u.users)
                        for u in users):
        return None
    padding = _arg(node, 8, "padding_idx", None)
    new = graph.call_function(F.embedding_bag, (node.args[1], node.args[0], node.args[2]), {
        "scale_grad_by_freq": _arg(node, 3, "scale_grad_by_freq", False),
        "mode": _BAG_MODES[_arg(node, 4, "mode", 0)], "sparse": _arg(node, 5, "sparse", False),
        "per_sample_weights": _arg(node, 6, "per_sample_weights", None),
        "include_last_offset": _arg(node, 7, "include_last_offset", False),
        "padding_idx": None if padding is None or padding < 0 else padding})
    for user in users:  # item 0 read, the others (offset2bag, bag sizes, max indices) unread
        user.replace_all_uses_with(new)
        graph.erase_node(user)
    return new


RULES: dict[Any, Callable] = {
    **{bag: _embedding_bag for bag in _BAGS},
    aten.cat.default: _function(torch.cat), aten.stack.default: _function(torch.stack),
    aten.unsqueeze.default: _method("unsqueeze"), aten.view.default: _method("view"),
    aten.reshape.default: _method("reshape"), aten.flatten.using_ints: _method("flatten"),
    aten.squeeze.dim: _method("squeeze"), aten.squeeze.dims: _method("squeeze"),
    aten.select.int: _method("select"), aten.slice.Tensor: _slice,
    aten.add.Tensor: _binary(operator.add), aten.sub.Tensor: _binary(operator.sub),
    aten.mul.Tensor: _binary(operator.mul), aten.to.dtype: _to, aten._to_copy.default: _to,
    aten.embedding.default: _embedding,
    aten.detach_.default: _function(torch.detach),  # on constants only (export's lifted numpy offsets)
}
_DROPPED = (aten._assert_tensor_metadata.default,)


class _Lifter:
    """Maps parameter get_attr nodes back to the modules of the original model that own them."""

    KINDS = (torch.nn.Embedding, torch.nn.EmbeddingBag, torch.nn.Linear, torch.nn.LayerNorm,
             torch.nn.modules.batchnorm._BatchNorm)

    def __init__(self, model: torch.nn.Module):
        self.owner: dict[int, tuple[str, torch.nn.Module]] = {}
        for path, module in model.named_modules():
            if isinstance(module, self.KINDS):
                for p in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
                    self.owner.setdefault(id(p), (path, module))

    def module_of(self, params: list[Any]) -> tuple[str, torch.nn.Module] | None:
        owners = {self.owner.get(id(p), (None, None))[0] for p in params}
        if len(owners) != 1 or None in owners:
            return None
        return self.owner[id(params[0])]


def _lift(graph: fx.Graph, node: fx.Node, lifter: _Lifter, values: dict[fx.Node, Any], modules: dict):
    """call_module of the original module for an aten call on its parameters, else None."""
    params = [values[a] for a in node.all_input_nodes if a in values]
    found = lifter.module_of(params) if params else None
    if found is None:
        return None
    path, module = found
    x = node.args[1] if node.target in (aten.embedding.default,) else node.args[0]
    if isinstance(module, torch.nn.Embedding) and node.target is aten.embedding.default:
        ok = module.padding_idx == (None if _arg(node, 2, "padding_idx", -1) == -1 else _arg(node, 2, "padding_idx", -1))
    elif isinstance(module, torch.nn.Linear) and node.target is aten.linear.default:
        ok = len([a for a in node.args[1:] if a is not None]) == len(list(module.parameters(recurse=False)))
    elif isinstance(module, torch.nn.LayerNorm) and node.target is aten.layer_norm.default:
        ok = True
    elif isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and node.target is aten.batch_norm.default:
        ok = _arg(node, 5, "training", False) is False
    else:
        ok = False
    if not ok:
        return None
    modules[path] = module
    return graph.call_module(path, (x,), {})


def normalize_exported(graph: fx.Graph, values: dict[fx.Node, Any], model: torch.nn.Module) -> dict[str, Any]:
    """Rewrite `graph` in place (see the module docstring); returns the modules its call_module nodes use.

    `values` maps every get_attr node to the tensor it reads.
    """
    lifter, modules, dropouts = _Lifter(model), {}, 0
    for node in list(graph.nodes):
        if getattr(node, "_erased", False):  # a bag's getitem, erased with its bag
            continue
        if node.op == "call_module" and node.target == "_guards_fn" or node.target in _DROPPED:
            graph.erase_node(node)
            continue
        if node.op != "call_function":
            continue
        with graph.inserting_before(node):
            new = _lift(graph, node, lifter, values, modules)
            if new is None and node.target is aten.dropout.default and _arg(node, 2, "train", False) is False:
                path = f"{EXPORT_ROOT}.dropout{dropouts}"
                modules[path], dropouts = torch.nn.Dropout(float(node.args[1])), dropouts + 1
                new = graph.call_module(path, (node.args[0],), {})
            if new is None and node.target in RULES:
                new = RULES[node.target](graph, node)
        if new is not None:
            node.replace_all_uses_with(new)
            graph.erase_node(node)
    return modules
