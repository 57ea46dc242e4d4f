"""The scratch copies of the feed trial (`feed_trial.py`) and what it reads of their graphs.

`splice` makes a copy of the graph in which each tower's embeddings at the interaction site are
replaced by stand-ins (zeros of the compressed piece shape, or zeros in place), as new inputs of
the copy, so the trial runs only the model's own nodes on them.
"""
from __future__ import annotations

import operator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from dmt_compile.ir.feed import TowerFeed
from dmt_compile.ir.graph import copy_graph, is_impure
from dmt_compile.ir.meta import DTYPE, SHAPE

__all__ = ["splice", "stand_in_zeros", "attr", "buffer_source", "producer_linear"]

_PASS_MODULES = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU, nn.Dropout, nn.Identity)
_PASS_FUNCS = {torch.relu, torch.sigmoid, torch.tanh, F.relu, F.gelu, F.silu, F.leaky_relu, F.elu, F.dropout}
_PASS_METHODS = {"relu", "sigmoid", "tanh"}


def stand_in_zeros(node: fx.Node, per_sample: tuple[int, ...] | None = None) -> torch.Tensor:
    """Zeros shaped like `node`'s recorded value, or of `per_sample` shape for its batch."""
    shape = node.meta[SHAPE]
    return torch.zeros(tuple(shape) if per_sample is None else (shape[0], *per_sample),
                       dtype=getattr(torch, node.meta[DTYPE]))


def splice(gm: fx.GraphModule, towers: list[TowerFeed], nodes: list[list[fx.Node]],
            compressed: bool) -> tuple[fx.GraphModule, list[torch.Tensor]]:
    """Scratch copy: each tower's site elements replaced by its pieces (or, `compressed=False`, by
    zeros in place); the stand-ins are new inputs, returned with their values."""
    graph, env = copy_graph(gm.graph)
    by_name = {n.name: env[n] for n in gm.graph.nodes if n in env}
    last_input = [n for n in graph.nodes if n.op == "placeholder"][-1]
    values: list[torch.Tensor] = []

    def stand_in(value: torch.Tensor) -> fx.Node:
        nonlocal last_input
        with graph.inserting_after(last_input):
            last_input = graph.placeholder(f"dmt_trial_in{len(values)}")
        values.append(value)
        return last_input

    for tf, lookups in zip(towers, nodes):
        sites: dict[str, list[fx.Node]] = {}
        for use in tf.uses:
            sites.setdefault(use.site, []).append(by_name[use.element or lookups[use.lookup].name])
        for site_name, elements in sites.items():
            site = by_name[site_name]
            items = list(site.args[0])
            if compressed:
                fake = stand_in(stand_in_zeros(elements[0], tuple(tf.piece_shape)))  # what enters the site
                first = min(items.index(e) for e in elements)
                kept = [x for x in items if x not in elements]
                items = kept[:first] + [fake] * tf.pieces + kept[first:]
            else:
                items = [stand_in(stand_in_zeros(x)) if x in elements else x for x in items]
            site.args = (items, *site.args[1:])
    out = fx.GraphModule(gm, graph)
    out.graph.eliminate_dead_code(is_impure_node=is_impure)
    out.recompile()
    return out, values


def attr(root: nn.Module, target: str) -> Any:
    obj = root
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


def buffer_source(root: nn.Module, item: Any) -> tuple[str, int | None] | None:
    """(buffer target, row or None) when an index item is a tensor buffer or `buffer[row]`."""
    if not isinstance(item, fx.Node):
        return None
    if item.op == "get_attr" and isinstance(attr(root, item.target), torch.Tensor):
        return item.target, None
    if (item.op == "call_function" and item.target is operator.getitem and isinstance(item.args[1], int)
            and isinstance(item.args[0], fx.Node) and item.args[0].op == "get_attr"):
        return item.args[0].target, item.args[1]
    return None


def producer_linear(root: nn.Module, node: fx.Node) -> fx.Node | None:
    """The nn.Linear call whose output reaches `node` through activations / dropout only, else None."""
    while isinstance(node, fx.Node):
        if node.op == "call_module":
            mod = root.get_submodule(node.target)
            if type(mod) is nn.Linear:
                return node
            if not isinstance(mod, _PASS_MODULES):
                return None
        elif not (node.op == "call_function" and node.target in _PASS_FUNCS
                  or node.op == "call_method" and node.target in _PASS_METHODS):
            return None
        node = node.args[0] if node.args else None
    return None
