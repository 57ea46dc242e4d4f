"""Partitioner properties (hypothesis) on synthetic requests, and through transform."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import dmt_compile
from dmt_compile.ir.detection import FeatureGroup, Lookup
from dmt_compile.partition.interface import PartitionRequest
from dmt_compile.partition.registry import get_partitioner
from dmt_compile.partition.learned import load_cap, make_learned_partitioner

NAMES = ("learned", "random", "contiguous", "balanced")


def _request(widths, num_towers, fixed, seed, samples=64, dim=4):
    groups, lookups, outputs = [], [], {}
    g = torch.Generator().manual_seed(seed)
    shared = torch.randn(samples, dim, generator=g)
    for i, w in enumerate(widths):
        name = f"f{i}"
        lookups.append(Lookup(i, f"n{i}", "embedding", (f"t{i}",), (0,), (name,), 10, w, (samples, w)))
        groups.append(FeatureGroup(i, (name,), (f"t{i}",), (i,), w, 10 * w, ()))
        base = shared if i % 2 else torch.randn(samples, dim, generator=g)
        outputs[i] = [torch.cat([base, torch.randn(samples, max(w - dim, 0), generator=g)], 1)[:, :w]
                      + 0.1 * torch.randn(samples, w, generator=g)]
    return PartitionRequest(tuple(groups), num_towers, fixed, dmt_compile.topo.as_topology("2x2"), seed,
                            outputs, tuple(lookups))


@st.composite
def requests(draw):
    n = draw(st.integers(2, 12))
    widths = draw(st.lists(st.sampled_from([1, 4, 8, 16, 48]), min_size=n, max_size=n))
    towers = draw(st.integers(1, min(4, n)))
    pinned = draw(st.lists(st.integers(0, n - 1), max_size=min(3, n), unique=True))
    fixed = {gi: draw(st.integers(0, towers - 1)) for gi in pinned}
    # the plan pass refuses pins that leave a tower empty; keep enough free groups
    if n - len(fixed) < towers - len(set(fixed.values())):
        fixed = {}
    return _request(widths, towers, fixed, draw(st.integers(0, 5)))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=12, deadline=None)
@given(req=requests())
def test_partitioner_properties(name, req):
    part = get_partitioner(name)
    res = part(req)
    assert set(res.assignment) == {g.index for g in req.groups}  # every group (feature) in one tower
    assert all(0 <= t < req.num_towers for t in res.assignment.values())
    assert all(res.assignment[gi] == t for gi, t in req.fixed.items())  # pins honoured
    assert set(res.assignment.values()) == set(range(req.num_towers))  # no empty tower
    assert part(req).assignment == res.assignment  # deterministic for a seed
    if name == "learned":
        loads = [0.0] * req.num_towers
        for gi, t in res.assignment.items():
            loads[t] += req.groups[gi].width
        assert max(loads) <= load_cap(req) + 1e-9  # balance bound
        assert 0.0 <= res.metrics["affinity_captured"] <= 1.0 + 1e-9
        assert res.metrics["balance_max_over_mean"] >= 1.0


def test_learned_beats_random_on_correlated_features():
    req = _request([4] * 8, 2, {}, 0, samples=512)
    learned = get_partitioner("learned")(req).metrics["affinity_captured"]
    rand = get_partitioner("random")(req).metrics["affinity_captured"]
    assert learned > 0.9 > rand  # odd features share one latent


def test_learned_without_calibration_falls_back_to_balanced():
    req = _request([4] * 4, 2, {}, 0)
    req = PartitionRequest(req.groups, 2, {}, req.topology, 0, None, req.lookups)
    res = make_learned_partitioner()(req)
    assert "no calibration" in res.notes[0]
    assert set(res.assignment.values()) == {0, 1}


class SharedTables(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared = nn.Embedding(30, 4)
        self.own = nn.ModuleDict({n: nn.Embedding(30, 4) for n in ("c", "d", "e", "f")})
        self.out = nn.Linear(24, 1)

    def forward(self, x):
        embs = [self.shared(x["a"]), self.shared(x["b"])] + [self.own[n](x[n]) for n in ("c", "d", "e", "f")]
        return self.out(torch.cat(embs, 1))


def _shared_inputs(seed, batch=16):
    g = torch.Generator().manual_seed(seed)
    return ({n: torch.randint(0, 30, (batch,), generator=g) for n in "abcdef"},)


@pytest.mark.parametrize("name", NAMES)
def test_shared_tables_and_pins_through_transform(name):
    model = SharedTables()
    calib = [_shared_inputs(s) for s in range(3)]
    dmt = dmt_compile.transform(model, "2x2", _shared_inputs(0), partitioner=name, calibration_batches=calib,
                                towers={"c": 1})
    assert dmt.plan.tower_of("a") == dmt.plan.tower_of("b")
    assert dmt.plan.tower_of("c") == 1
    assert sorted(f for t in dmt.plan.towers for f in t) == list("abcdef")


def test_learned_plan_records_metrics():
    dmt = dmt_compile.transform(SharedTables(), "h100:16", _shared_inputs(0), partitioner="learned",
                                calibration_batches=[_shared_inputs(s) for s in range(2)])
    metrics = dict(dmt.plan.metrics)
    assert {"affinity_captured", "balance_max_over_mean", "predicted_sptt_ms"} <= set(metrics)
    assert "affinity_captured" in str(dmt.plan)
