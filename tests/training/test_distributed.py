"""`dmt_compile.distribute`: a plain torch.optim loop on 2x2 matches one process; replicas start equal."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import ROOT
from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.errors import CollectiveError
from dmt_compile.runtime.launch import launch_local
from dmt_compile.topo import Topology
from workers import DLRM, adam_cases, replicas_after_start

pytestmark = pytest.mark.distributed
ENV = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "training"), os.path.join(ROOT, "tests"), ROOT])}
TOL = 1e-5
CASES = [
    # identity Tower Modules; small buckets: several per step, so buckets can start while backward runs
    dict(spec=DLRM, topology="2x2", steps=3, bucket_cap_mb=0.004),
    # compressing Tower Modules (gradients summed inside the host) and tables sharded by rows
    dict(spec=DLRM, topology="2x2", steps=3, tm="linear", row_wise="always"),
    # the flat table-wise baseline (one tower over the world) through the same module
    dict(spec=DLRM, topology="2x2", steps=3, strategy="flat"),
    # gradient accumulation over two backward passes (no_sync, synchronised twice, zeroed grads)
    dict(kind="accumulation", spec=DLRM, topology="2x2"),
    # dense gradients through the hierarchical all-reduce (reduce-scatter in host, across, all-gather)
    dict(spec=DLRM, topology="2x2", steps=3, tm="linear", dense_sync="hierarchical", bucket_cap_mb=0.004),
]


@pytest.fixture(scope="module")
def adam_2x2():
    per_rank = launch_local(adam_cases, Topology(2, 2), args=(CASES,), timeout_s=400, env=ENV)
    return [[r[i] for r in per_rank] for i in range(len(CASES))]


def test_dlrm_on_2x2_with_adam_matches_one_process(adam_2x2):
    results = adam_2x2[0]
    keys = set()
    for r in results:
        assert r["out"] <= TOL, r  # local outputs of every step
        assert r["param"] <= TOL, r  # every parameter this rank holds, after 3 steps
        keys |= set(r["checked"])
    model, _ = load_model_spec(DLRM)
    assert keys == set(model.state_dict())  # every parameter was compared, on a rank that holds it
    for r in results:
        assert r["buckets"] >= 3
        assert r["stats"]["world/dense_grads"]["calls"] == 3 * r["buckets"]  # one all_reduce per bucket and step
        assert r["launches"]["during_backward"] > 0  # buckets started before backward ended
        assert r["launches"]["during_backward"] + r["launches"]["at_end"] == 3 * r["buckets"]
        assert not any(k.startswith("intra/") and "grads" in k for k in r["stats"])  # identity: no TM grads


def test_compressing_tower_modules_and_row_shards_match_one_process(adam_2x2):
    for r in adam_2x2[1]:
        assert r["out"] <= TOL and r["param"] <= TOL, r
        assert any(k.startswith("dmt.tower") for k in r["checked"])
        assert r["stats"]["intra/tm_grads"]["calls"] == 3  # Tower-Module grads: one bucket per step, in the host
        assert "row shards" in r["describe"] and " 0 row shards" not in r["describe"]


def test_flat_baseline_trains_through_the_same_module(adam_2x2):
    for r in adam_2x2[2]:
        assert r["out"] <= TOL and r["param"] <= TOL, r
        assert r["stats"]["world/grads"]["calls"] == 3 * r["buckets"]  # everything replicated syncs over the world
        assert "cross/" not in " ".join(r["stats"])  # no peer exchange in the flat baseline


def test_gradient_accumulation_is_exact(adam_2x2):
    for r in adam_2x2[3]:
        assert r["params"] > 10
        assert r["no_sync"] <= 1e-6 and r["twice"] <= 1e-6 and r["zeros"] <= 1e-6, r


def test_hierarchical_dense_sync_matches_one_process_and_sends_a_third_across_hosts(adam_2x2):
    flat, hier = adam_2x2[1], adam_2x2[4]
    for r, f in zip(hier, flat):
        assert r["out"] <= TOL and r["param"] <= TOL, r
        assert "world/dense_grads" not in r["stats"]  # no flat all-reduce of dense gradients
        steps = 3 * r["buckets"] - r["stats"]["intra/tm_grads"]["calls"]  # dense buckets x 3 steps
        assert r["stats"]["intra/dense_grads.rs"]["calls"] == steps and r["stats"]["intra/dense_grads.ag"]["calls"] == steps
        assert r["stats"]["cross/dense_grads.ar"]["calls"] == steps
        assert r["launches"]["during_backward"] > 0
        # S bytes of dense gradients: a ring over the world of W = 4 sends 2 (W-1)/W S = 1.5 S per rank;
        # across H = 2 hosts only S/L (L = 2) goes out, 2 (H-1)/H S/L = 0.5 S: a third
        cross = r["stats"]["cross/dense_grads.ar"]["bytes_sent"]
        world = f["stats"]["world/dense_grads"]["bytes_sent"]
        assert abs(3 * cross - world) <= 0.01 * world, (cross, world)


def test_unknown_dense_sync_is_a_typed_error():
    import dmt_compile
    from dmt_compile.errors import RuntimeSetupError
    from dmt_compile.training.distributed import DistributedDmt

    with pytest.raises(RuntimeSetupError, match="unknown dense_sync 'ring'") as info:
        DistributedDmt(None, None, dense_sync="ring")
    assert "hierarchical" in info.value.fix
    assert dmt_compile.distribute is not None


def test_replicated_parameters_start_equal_by_broadcast():
    results = launch_local(replicas_after_start, Topology(2, 2), args=(DLRM, "2x2", "broadcast"), timeout_s=300,
                           env=ENV)
    for r in results:
        for name, t in r["dense"].items():
            assert torch.equal(t, results[0]["dense"][name]), name  # rank 0's dense weights everywhere
            assert torch.equal(t, results[0]["before"][name]), name
    for host in (0, 1):
        first = results[2 * host]
        assert first["towers"]  # the linear Tower Modules exist and were compared
        for r in results[2 * host: 2 * host + 2]:
            for name, t in r["towers"].items():
                assert torch.equal(t, first["towers"][name]), name  # the host's first rank's weights
                assert torch.equal(t, first["before"][name]), name
    differ = [n for n in results[0]["dense"] if not torch.equal(results[0]["before"][n], results[1]["before"][n])]
    assert differ  # the seeds really made them differ


def test_replicas_that_differ_are_refused_by_check():
    with pytest.raises(CollectiveError, match="replicated tensors differ across all ranks at start-up"):
        launch_local(replicas_after_start, Topology(2, 2), args=(DLRM, "2x2", "check"), timeout_s=300, env=ENV)
