"""Topology, presets, networkx view, cost model and partitioner."""
from dmt_compile.topo.topology import Topology, as_topology

__all__ = ["Topology", "as_topology"]
