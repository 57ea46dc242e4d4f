"""A networkx view of a Topology (GPUs, NICs, switches, links) and its DOT text.

Nodes carry ``kind`` (``gpu``, ``nic``, ``nvswitch``, ``switch``) and, for GPUs, ``rank``,
``host`` and ``local``. Edges carry ``bandwidth`` (bytes/s, per direction) and ``tier``
(``nvlink``, ``pcie``, ``leaf``, or a level name). The fabric is drawn as a tree:
each host's NICs hang off the leaf switch of its innermost group (a rack, or one fabric
switch when there are no levels), leaf switches hang off their level switches, and the
uplink of a group carries the sum of the NIC bandwidth below it divided by the level's
oversubscription. Rail wiring inside a leaf is not drawn.

Used by ``dmt-compile topo --format dot`` and for analysis (e.g. the uplink capacity a
level offers, :func:`uplink_bandwidth`).
"""
from __future__ import annotations

import networkx as nx

from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["to_networkx", "to_dot", "uplink_bandwidth"]


def _node(kind: str, *parts: object) -> str:
    return kind + ":" + "/".join(str(p) for p in parts)


def to_networkx(topology: "Topology | str") -> nx.Graph:
    """The cluster as an undirected graph (deterministic node and edge order)."""
    topo = as_topology(topology)
    g = nx.Graph(name=str(topo), preset=topo.name or "")
    intra = topo.intra_bw
    inter = topo.inter_bw
    levels = topo.active_levels
    leaf_span = levels[0].hosts if levels else topo.num_hosts
    for h in range(topo.num_hosts):
        sw = _node("nvswitch", h)
        g.add_node(sw, kind="nvswitch", host=h)
        leaf = _node("switch", "leaf", h // leaf_span)
        g.add_node(leaf, kind="switch", tier="leaf", index=h // leaf_span)
        for local in range(topo.local_size):
            rank = h * topo.local_size + local
            gpu, nic = _node("gpu", rank), _node("nic", rank)
            g.add_node(gpu, kind="gpu", rank=rank, host=h, local=local)
            g.add_node(nic, kind="nic", rank=rank, host=h, local=local)
            g.add_edge(gpu, sw, bandwidth=intra, tier="nvlink")
            g.add_edge(gpu, nic, bandwidth=inter, tier="pcie")
            if topo.num_hosts > 1:
                g.add_edge(nic, leaf, bandwidth=inter, tier="leaf")
    if topo.num_hosts == 1:
        g.remove_node(_node("switch", "leaf", 0))
        return g
    # uplinks: the group of level k (span hosts_k) hangs off the switch of level k+1
    spans = [lv.hosts for lv in levels] + [topo.num_hosts]
    names = ["leaf"] + [lv.name for lv in levels]
    for k, lv in enumerate(levels):
        child, parent = names[k], (names[k + 1] if k + 1 < len(levels) else "core")
        for i in range(topo.num_hosts // spans[k]):
            up = _node("switch", parent, i * spans[k] // spans[k + 1])
            g.add_node(up, kind="switch", tier=parent, index=i * spans[k] // spans[k + 1])
            bw = None if inter is None else inter * lv.hosts * topo.local_size / lv.oversubscription
            g.add_edge(_node("switch", child, i), up, bandwidth=bw, tier=lv.name,
                       oversubscription=lv.oversubscription)
    return g


def uplink_bandwidth(graph: nx.Graph, tier: str) -> float:
    """Total bandwidth (bytes/s) of the edges of `tier` (0 when the tier is absent)."""
    return float(sum(d["bandwidth"] or 0.0 for _, _, d in graph.edges(data=True) if d.get("tier") == tier))


def _label(bw: float | None) -> str:
    return "?" if bw is None else f"{bw / 1e9:.4g} GB/s"


def to_dot(topology: "Topology | str") -> str:
    """Graphviz DOT text of :func:`to_networkx` (one cluster per host)."""
    topo = as_topology(topology)
    g = to_networkx(topo)
    shapes = {"gpu": "box", "nic": "ellipse", "nvswitch": "diamond", "switch": "hexagon"}
    lines = [f'graph "{topo.name or "topology"} {topo}" {{', "  rankdir=TB;", "  node [fontsize=10];"]
    for h in range(topo.num_hosts):
        lines.append(f'  subgraph "cluster_host{h}" {{')
        lines.append(f'    label="host {h}";')
        for n, d in g.nodes(data=True):
            if d.get("host") == h:
                lines.append(f'    "{n}" [shape={shapes[d["kind"]]}, label="{n.replace(":", " ")}"];')
        lines.append("  }")
    for n, d in g.nodes(data=True):
        if "host" not in d:
            lines.append(f'  "{n}" [shape={shapes[d["kind"]]}];')
    for u, v, d in g.edges(data=True):
        lines.append(f'  "{u}" -- "{v}" [label="{_label(d["bandwidth"])}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
