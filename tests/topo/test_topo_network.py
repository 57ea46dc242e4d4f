"""The networkx view and its DOT text."""
import networkx as nx

from dmt_compile.topo.network import to_dot, to_networkx, uplink_bandwidth


def test_counts_and_attributes():
    g = to_networkx("h100:16")
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(k == "gpu" for k in kinds.values()) == 16
    assert sum(k == "nic" for k in kinds.values()) == 16
    assert sum(k == "nvswitch" for k in kinds.values()) == 2
    assert nx.is_connected(g)
    bw = {d["tier"]: d["bandwidth"] for _, _, d in g.edges(data=True)}
    assert bw["nvlink"] == 450e9 and bw["pcie"] == 50e9 and bw["leaf"] == 50e9
    assert g.nodes["gpu:9"]["host"] == 1 and g.nodes["gpu:9"]["local"] == 1


def test_levels_and_oversubscription():
    g = to_networkx("grand-teton:6144")
    assert nx.is_connected(g)
    # two pods, each uplink = 384 hosts x 8 NICs x 50 GB/s / 7
    assert uplink_bandwidth(g, "pod") == 2 * 384 * 8 * 50e9 / 7
    assert uplink_bandwidth(g, "rack") == 384 * 2 * 8 * 50e9


def test_single_host_and_dot():
    g = to_networkx("1x4")
    assert not any(d["kind"] == "switch" for _, d in g.nodes(data=True))
    dot = to_dot("a100:16")
    assert dot.startswith('graph "dgx-a100 2x8"') and dot.rstrip().endswith("}")
    assert '"gpu:15"' in dot and "300 GB/s" in dot and "25 GB/s" in dot
    assert dot == to_dot("a100:16")  # deterministic
    assert 'label="?"' in to_dot("2x2")  # unknown bandwidths are shown, not invented
