"""Topology basics, spec parsing (good and bad), JSON round-trip, levels and presets."""
import json

import pytest

from dmt_compile.errors import DmtError, TopologyError
from dmt_compile.topo import Level, Topology, as_topology
from dmt_compile.topo.spec import topology_from_json
from dmt_compile.topo.presets import PRESETS, get_preset, preset_names, preset_topology


def test_basics_unchanged():
    t = Topology(2, 4)
    assert t.world_size == 8 and str(t) == "2x4"
    assert t.host_of(5) == 1 and t.local_of(5) == 1
    assert t.peer_group(5) == (1, 5)
    assert t.intra_group(5) == (4, 5, 6, 7)
    assert as_topology("2x4") == t == as_topology("2x4") == as_topology(t)
    assert t.intra_bw is None and t.inter_bw is None  # no silent defaults


@pytest.mark.parametrize("spec,hosts,local,name", [
    ("2x4", 2, 4, None), (" 3 X 2 ", 3, 2, None), ("h100:64", 8, 8, "dgx-h100"),
    ("H100:8x4", 8, 4, "dgx-h100"), ("a100:16", 2, 8, "dgx-a100"), ("dgx2:32", 2, 16, "dgx2"),
    ("torchrec:16", 2, 8, "torchrec-default"), ("grand_teton:64", 8, 8, "grand-teton"),
])
def test_parse_good(spec, hosts, local, name):
    t = as_topology(spec)
    assert (t.num_hosts, t.local_size, t.name) == (hosts, local, name)


@pytest.mark.parametrize("spec,needle", [
    ("0x4", "num_hosts"), ("2x0", "local_size"), ("3x", "malformed"), ("", "malformed"),
    ("h100:60", "not a whole number"), ("h100", "no GPU count"), ("h100:0", "positive"),
])
def test_parse_bad(spec, needle):
    with pytest.raises(TopologyError) as info:
        as_topology(spec)
    assert needle in str(info.value) and info.value.fix


def test_non_divisible_world_names_fix():
    with pytest.raises(TopologyError) as info:
        as_topology("h100:60")
    assert "multiple of 8" in info.value.fix


def test_unknown_preset_names_valid_choices():
    with pytest.raises(TopologyError) as info:
        as_topology("tpu9:64")
    assert isinstance(info.value, DmtError) and isinstance(info.value, ValueError)
    for name in preset_names():
        assert name in info.value.fix


def test_dict_and_json_round_trip():
    for spec in ["2x4", "h100:64", "grand-teton:6144", "torchrec:8"]:
        t = as_topology(spec)
        assert topology_from_json(t.to_json()) == t
        assert as_topology(t.to_dict()) == t
        assert json.loads(t.to_json()) == t.to_dict()
    t = as_topology({"preset": "a100", "gpus": 32, "inter_bw": 12.5e9})
    assert (t.num_hosts, t.inter_bw, t.intra_bw) == (4, 12.5e9, 300e9)
    assert as_topology('{"num_hosts": 2, "local_size": 2, "intra_bw": 1e9}').intra_bw == 1e9


@pytest.mark.parametrize("bad", [
    {"num_hosts": 2}, {"num_hosts": 2, "local_size": 2, "bogus": 1},
    {"num_hosts": 2, "local_size": 2, "intra_bw": -1.0}, {"num_hosts": 2, "local_size": 2, "inter_bw": 0},
    "{not json", 17,
])
def test_bad_dicts(bad):
    with pytest.raises(TopologyError):
        as_topology(bad)


def test_levels_and_taper():
    gt = as_topology("grand-teton:6144")
    assert gt.mesh_shape == (2, 192, 2, 8)
    assert gt.mesh_dim_names == ("pod", "rack", "host", "local")
    f0, fpod = 767 / 768, 1 - 384 / 768
    assert gt.network_taper() == pytest.approx(7 * fpod / f0)
    small = as_topology("grand-teton:64")
    assert [lv.name for lv in small.active_levels] == ["rack"] and small.network_taper() == 1.0
    assert small.group_of(17, "rack") == 1 and small.group_of(17, "host") == 2
    with pytest.raises(TopologyError):
        Topology(3, 8, levels=(Level("rack", 2),))  # 3 hosts do not fill racks of 2
    with pytest.raises(TopologyError):
        Topology(4, 8, levels=(Level("rack", 2), Level("pod", 3)))  # 3 not a multiple of 2
    with pytest.raises(TopologyError):
        Level("host", 2)
    with pytest.raises(TopologyError):
        Level("rack", 2, oversubscription=0.5)


def test_with_world_size_and_get_bw():
    t = as_topology("torchrec:8")
    assert t.with_world_size(64).num_hosts == 8
    with pytest.raises(TopologyError):
        t.with_world_size(12)
    assert t.get_bw("all_to_all", 8, 8) == t.intra_bw
    assert t.get_bw("all_to_all", 16, 8) == t.inter_bw
    assert t.get_bw("all_reduce", 16, 8) == 8 * t.inter_bw
    with pytest.raises(TopologyError):
        Topology(2, 2).get_bw("all_to_all", 4, 2)  # no bandwidths: fail loudly


def test_presets_have_sources_and_sane_numbers():
    assert {"dgx1-v100", "dgx2", "dgx-a100", "dgx-h100", "h800", "grand-teton", "torchrec-default"} <= set(PRESETS)
    for p in PRESETS.values():
        assert p.source and p.intra_bw > p.inter_bw > 0 and p.hbm_bw > 0
    assert get_preset("H100").inter_bw == 50e9 and get_preset("a100").inter_bw == 25e9
    tr = get_preset("torchrec")
    assert tr.intra_bw == 600 * 2**30 and tr.inter_bw == 12.5 * 2**30
    assert preset_topology("h100", None, num_hosts=2, local_size=4).world_size == 8
