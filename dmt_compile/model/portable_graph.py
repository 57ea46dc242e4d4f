"""Pickling a rewritten GraphModule *with* its graph: node names and `node.meta` survive.

`torch.fx.GraphModule.__reduce__` pickles the generated Python code and re-traces it on load,
which renames nodes and drops `node.meta` (the plan's `dmt.tower` / `dmt.role` / `dmt.lookup`
annotations that lowering, batching and printing read). `PortableGraphModule` keeps the module
tree as it is (every child, parameter and buffer, also those the graph no longer references)
and the graph as one flat record per node, rebuilt node for node on load. Flat records, not a
pickled `fx.Graph`: a graph's node list is a linked list, which pickle would walk recursively.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

__all__ = ["PortableGraphModule", "clean_types"]

# attributes GraphModule.__init__ / recompile() set themselves
_REBUILT = {"_graph", "_code", "_lineno_map", "_prologue_start", "_in_spec", "_out_spec"}


@dataclass(frozen=True)
class _Ref:
    name: str


@dataclass(frozen=True)
class _OpRef:
    """An aten (or other torch.ops) overload by name: OpOverload objects themselves do not pickle."""

    namespace: str
    op: str
    overload: str

    @classmethod
    def of(cls, target: Any) -> Any:
        if isinstance(target, torch._ops.OpOverload):
            packet = target.overloadpacket
            return cls(packet._qualified_op_name.split("::")[0], packet.__name__, target._overloadname)
        return target

    def resolve(self) -> Any:
        return getattr(getattr(getattr(torch.ops, self.namespace), self.op), self.overload)


@dataclass
class _NodeRecord:
    name: str
    op: str
    target: Any
    args: Any
    kwargs: Any
    type: Any
    meta: dict


def clean_types(graph: fx.Graph) -> bool:
    """Drop string type annotations (postponed annotations), which fx's pickling cannot import; True if any."""
    changed = False
    for n in graph.nodes:
        if isinstance(n.type, str):
            n.type = None
            changed = True
    return changed


class PortableGraphModule:
    """A picklable stand-in for a GraphModule; `rebuild()` returns an equivalent one."""

    def __init__(self, gm: fx.GraphModule):
        self.class_name = type(gm).__name__
        self.body = {k: v for k, v in gm.__dict__.items() if k not in _REBUILT}
        graph = gm.graph
        self.codegen = graph._codegen
        self.tracer_cls = getattr(graph, "_tracer_cls", None)
        self.nodes = [_NodeRecord(n.name, n.op, _OpRef.of(n.target), fx.node.map_arg(n.args, lambda a: _Ref(a.name)),
                                  fx.node.map_arg(n.kwargs, lambda a: _Ref(a.name)), n.type, dict(n.meta))
                      for n in graph.nodes]

    def rebuild(self) -> fx.GraphModule:
        graph = fx.Graph(tracer_cls=self.tracer_cls)
        graph._codegen = self.codegen
        env: dict[str, fx.Node] = {}

        def resolve(a: Any) -> Any:
            if isinstance(a, _Ref):
                return env[a.name]
            if isinstance(a, (list, tuple)):
                out = [resolve(x) for x in a]
                return out if isinstance(a, list) else type(a)(out) if type(a) is tuple else type(a)(*out)
            if isinstance(a, dict):
                return {k: resolve(v) for k, v in a.items()}
            if isinstance(a, slice):
                return slice(resolve(a.start), resolve(a.stop), resolve(a.step))
            return a

        for r in self.nodes:
            target = r.target.resolve() if isinstance(r.target, _OpRef) else r.target
            node = graph.create_node(r.op, target, resolve(r.args), resolve(r.kwargs), r.name, r.type)
            node.meta = r.meta
            env[r.name] = node
        root = torch.nn.Module()
        root.__dict__.update(self.body)
        gm = fx.GraphModule(root, graph, self.class_name)
        for key, value in self.body.items():  # the whole module tree, not only what the graph references
            if key in ("_modules", "_parameters", "_buffers", "_non_persistent_buffers_set") \
                    or key not in gm.__dict__:
                gm.__dict__[key] = value
        gm.recompile()
        return gm
