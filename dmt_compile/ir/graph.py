"""Graph utilities shared by the passes and the lowering.

* `tag` — provenance and annotations on a node; `call_module` — a named call_module node.
* `copy_graph` — a copy of a graph whose nodes keep their `meta`.
* `Placement` — put new nodes right before / after existing anchors, then re-sort the graph
  topologically so every node sits as close to its requested place as its inputs allow.
* `tower_nodes` — the boundary, lookup, Tower-Module and reassembly nodes of every tower.
* `VIEW_METHODS` — methods that only change a tensor's view (the one set every pass uses);
  `is_view_step(node)` — such a method, or a function that only selects a lookup's own values
  (`kt_get`: one key of a torchrec KeyedTensor).
"""
from __future__ import annotations

import heapq
import operator
from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx

from dmt_compile.ir.boundary import ids_exchange, outputs_exchange
from dmt_compile.ir.meta import FROM_PASS, ROLE, TOWER, Role
from dmt_compile.ir.torchrec_ops import kt_get

__all__ = ["tag", "call_module", "copy_graph", "Placement", "TowerNodes", "tower_nodes", "VIEW_METHODS",
           "erase_unused", "get_attr_value", "is_impure", "is_view_step"]

#: Tensor methods that reshape or cast without mixing samples or features.
VIEW_METHODS = frozenset({"unsqueeze", "view", "reshape", "squeeze", "flatten", "contiguous", "float"})
#: functions that select a value's own elements without mixing samples or features
VIEW_FUNCTIONS = frozenset({kt_get})


def is_view_step(node: fx.Node) -> bool:
    """`node` only re-views or selects its first argument's values (VIEW_METHODS, VIEW_FUNCTIONS)."""
    return (node.op == "call_method" and node.target in VIEW_METHODS) or \
        (node.op == "call_function" and node.target in VIEW_FUNCTIONS)


def is_impure(node: fx.Node) -> bool:
    """Dead-code elimination must keep this node: side effects (guards, asserts) or an in-place method.

    fx treats every `call_method` as pure, so `p.unsqueeze_(1)` whose result is unused (the
    tensor changes in place) would be deleted; pass `is_impure_node=is_impure` to
    `Graph.eliminate_dead_code` everywhere.
    """
    if node.is_impure():
        return True
    return node.op == "call_method" and str(node.target).endswith("_") and not str(node.target).startswith("__")


def tag(node: fx.Node, pass_name: str, **meta: Any) -> fx.Node:
    """Record `pass_name` as the node's provenance and set `dmt.<key>` annotations."""
    node.meta[FROM_PASS] = pass_name
    for key, value in meta.items():
        node.meta[f"dmt.{key}"] = value
    return node


def call_module(graph: fx.Graph, target: str, args: tuple, name: str) -> fx.Node:
    """`graph.call_module` with a chosen node name."""
    return graph.create_node("call_module", target, args, {}, name=name)


def copy_graph(graph: fx.Graph) -> tuple[fx.Graph, dict[fx.Node, fx.Node]]:
    """A copy of `graph` (nodes keep their meta) and the map old node -> new node."""
    new = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    new.output(new.graph_copy(graph, env))
    for old, copied in env.items():
        copied.meta = dict(old.meta)
    return new, env


def get_attr_value(root: Any, target: str) -> Any:
    obj = root
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


@dataclass
class Placement:
    """Requested places for new nodes, relative to nodes that exist when the Placement is made.

    `before(anchor, *nodes)` puts `nodes` (in this order) right before `anchor`; `after` right
    after it. `apply()` re-sorts the graph topologically: unplaced nodes keep their order,
    placed nodes go to their anchor's place, and no node moves before one of its inputs.
    Placeholders stay first and the output last.
    """

    graph: fx.Graph
    _index: dict[fx.Node, int] = field(init=False)
    _key: dict[fx.Node, tuple[int, int, int]] = field(init=False, default_factory=dict)
    _seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._index = {n: i for i, n in enumerate(self.graph.nodes)}

    def _place(self, anchor: fx.Node, side: int, nodes: tuple[fx.Node, ...]) -> None:
        if anchor not in self._index:
            raise ValueError(f"placement anchor {anchor.name} was created after the Placement")
        for n in nodes:
            self._seq += 1
            self._key[n] = (self._index[anchor], side, self._seq)

    def before(self, anchor: fx.Node, *nodes: fx.Node) -> None:
        self._place(anchor, 0, nodes)

    def after(self, anchor: fx.Node, *nodes: fx.Node) -> None:
        self._place(anchor, 2, nodes)

    def apply(self) -> None:
        nodes = list(self.graph.nodes)
        order_index = {n: i for i, n in enumerate(nodes)}
        key = {n: self._key.get(n, (self._index.get(n, order_index[n]), 1, 0)) for n in nodes}
        indeg = {n: len(set(n.all_input_nodes)) for n in nodes}
        heap = [(key[n], order_index[n], n) for n in nodes if indeg[n] == 0]
        heapq.heapify(heap)
        order: list[fx.Node] = []
        while heap:
            _, _, n = heapq.heappop(heap)
            order.append(n)
            for user in n.users:
                indeg[user] -= 1
                if indeg[user] == 0:
                    heapq.heappush(heap, (key[user], order_index[user], user))
        if len(order) != len(nodes):
            raise RuntimeError("the graph has a cycle after a rewrite")
        final = ([n for n in order if n.op == "placeholder"]
                 + [n for n in order if n.op not in ("placeholder", "output")]
                 + [n for n in order if n.op == "output"])
        anchor = self.graph._root  # the sentinel node of fx's linked list
        for n in final:
            anchor.prepend(n)


@dataclass
class TowerNodes:
    """The nodes of one tower after `sptt-rewrite`."""

    tower: int
    ids: fx.Node | None = None  # ids_exchange(t, *ids)
    ids_items: dict[int, fx.Node] = field(default_factory=dict)  # position -> getitem(ids, position)
    lookups: list[fx.Node] = field(default_factory=list)
    tm: fx.Node | None = None  # the Tower Module call
    out: fx.Node | None = None  # outputs_exchange(t, *payload)

    @property
    def payload(self) -> list[fx.Node]:
        return list(self.out.args[1:]) if self.out is not None else []

    @property
    def parts(self) -> list[fx.Node]:
        """getitem(out, k) nodes, by k."""
        if self.out is None:
            return []
        items = [u for u in self.out.users if u.op == "call_function" and u.target is operator.getitem]
        return sorted(items, key=lambda u: u.args[1])


def tower_nodes(graph: fx.Graph) -> dict[int, TowerNodes]:
    """Every tower's nodes, by tower index, lookups in graph order."""
    towers: dict[int, TowerNodes] = {}
    for n in graph.nodes:
        t = n.meta.get(TOWER)
        if t is None:
            continue
        tn = towers.setdefault(t, TowerNodes(t))
        if n.op == "call_function" and n.target is ids_exchange:
            tn.ids = n
        elif n.op == "call_function" and n.target is outputs_exchange:
            tn.out = n
        elif n.meta.get(ROLE) == Role.LOOKUP:
            tn.lookups.append(n)
        elif n.op == "call_module" and n.meta.get(ROLE) == Role.TOWER_MODULE:
            tn.tm = n
    for tn in towers.values():
        if tn.ids is not None:
            tn.ids_items = {u.args[1]: u for u in tn.ids.users}
    return towers


def erase_unused(graph: fx.Graph, candidates: list[fx.Node]) -> list[fx.Node]:
    """Erase the candidates (and get_attr nodes they leave unused) once nothing uses them.

    Returns the candidates that are still used (and so were kept).
    """
    pending = list(dict.fromkeys(candidates))
    changed = True
    while changed:
        changed = False
        for n in list(pending):
            if n.users:
                continue
            weights = [a for a in n.all_input_nodes if a.op == "get_attr"]
            graph.erase_node(n)
            pending.remove(n)
            pending += [w for w in weights if w not in pending]
            changed = True
    return [n for n in pending if n.op != "get_attr"]
