"""Small graph helpers shared by the mutating passes."""
from __future__ import annotations

import heapq
from typing import Any

import torch.fx as fx

__all__ = ["stable_toposort", "tag", "call_module"]


def tag(node: fx.Node, pass_name: str, **meta: Any) -> fx.Node:
    node.meta["dmt.from_pass"] = pass_name
    for key, value in meta.items():
        node.meta[f"dmt.{key}"] = value
    return node


def call_module(graph: fx.Graph, target: str, args: tuple, name: str) -> fx.Node:
    """`graph.call_module` with a chosen node name."""
    return graph.create_node("call_module", target, args, {}, name=name)


def stable_toposort(graph: fx.Graph, priority: dict[fx.Node, float]) -> None:
    """Reorder nodes topologically, keeping each node as close to its `priority` as inputs allow.

    Nodes without a priority keep their current position. Placeholders stay first, output last.
    """
    nodes = list(graph.nodes)
    prio = {n: priority.get(n, float(i)) for i, n in enumerate(nodes)}
    indeg = {n: len(set(n.all_input_nodes)) for n in nodes}
    heap = [(prio[n], i, n) for i, n in enumerate(nodes) if indeg[n] == 0]
    order_index = {n: i for i, n in enumerate(nodes)}
    heapq.heapify(heap)
    order: list[fx.Node] = []
    while heap:
        _, _, n = heapq.heappop(heap)
        order.append(n)
        for user in n.users:
            indeg[user] -= 1
            if indeg[user] == 0:
                heapq.heappush(heap, (prio[user], order_index[user], user))
    if len(order) != len(nodes):
        raise RuntimeError("graph has a cycle after rewrite")
    placeholders = [n for n in order if n.op == "placeholder"]
    output = [n for n in order if n.op == "output"]
    rest = [n for n in order if n.op not in ("placeholder", "output")]
    final = placeholders + rest + output
    anchor = graph._root  # the sentinel node of fx's linked list
    for n in final:
        anchor.prepend(n)
