"""`distribute(pipeline_chunks=k)`: a step as k micro-batches whose exchanges overlap compute equals
the whole-batch step (outputs, loss, every gradient and parameter, within float summation order),
sends the same bytes in k exchanges per step, and really keeps chunk i+1's output exchange in flight
while chunk i waits; ranks that disagree on k are refused; bad counts and batches are typed errors.
`dense_sync="hierarchical_async"` (the three-stage chain during backward) is bitwise the synchronous one."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import ROOT
from dmt_compile.errors import InputError, RuntimeSetupError
from dmt_compile.runtime.launch import launch_local
from dmt_compile.training.micro_batches import chunk_bounds, concat_outputs

ENV = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "training"), os.path.join(ROOT, "tests"), ROOT])}
DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"
JAGGED = "zoo.m05_weighted_bag_youtube:factory"  # jagged EmbeddingBag ids with per-sample weights
TOL = 1e-5  # float32: the chunks' gradient terms are summed in another order than one batch's
CASES = [
    # compressing Tower Modules, 3 uneven chunks (3 + 3 + 2 samples), hierarchical dense sync
    dict(spec=DLRM, topology="2x2", chunks=3, tm="linear", compression=2, dense_sync="hierarchical"),
    # jagged weighted bags (offsets sliced per chunk), identity Tower Modules, small buckets
    dict(spec=JAGGED, topology="2x2", chunks=2, tm="identity", bucket_cap_mb=0.004),
    # the flat baseline: the output exchange is the identity, lookups over the world
    dict(spec=DLRM, topology="2x2", chunks=2, tm="identity", strategy="flat"),
    dict(kind="mismatch", spec=DLRM),
    dict(kind="chain", spec=DLRM),
]


@pytest.fixture(scope="module")
def chunk_runs():
    from chunk_workers import chunk_cases  # noqa: F401 - importable under ENV

    per_rank = launch_local(chunk_cases, "2x2", args=(CASES,), timeout_s=480, env=ENV)
    return [[r[i] for r in per_rank] for i in range(len(CASES))]


def _ops(stats: dict, prefix: str) -> dict:
    return {k: v for k, v in stats.items() if k.startswith(prefix)}


@pytest.mark.distributed
@pytest.mark.parametrize("case", [0, 1, 2])
def test_chunked_step_equals_the_whole_batch(chunk_runs, case):
    chunks = CASES[case]["chunks"]
    for r in chunk_runs[case]:
        d = r["diff"]
        assert d["out"] <= TOL and d["loss"] <= TOL and d["grad"] <= TOL and d["param"] <= TOL, d
        assert r["grads"] > 3
        s1, sk = r["stats_1"], r["stats_k"]
        crossing = {**_ops(s1, "cross/"), **_ops(s1, "world:cross-host/")}  # flat: the world's cross-host share
        assert crossing
        for key, whole in crossing.items():  # the same bytes cross hosts, in k exchanges per step
            if ".counts" in key or "grads" in key:
                continue
            assert sk[key]["bytes_sent"] == whole["bytes_sent"], (key, whole, sk[key])
            assert sk[key]["calls"] == chunks * whole["calls"], (key, whole, sk[key])
        if CASES[case].get("strategy") == "flat":
            assert not _ops(sk, "cross/outputs")
            continue
        assert _ops(s1, "cross/ids") and _ops(s1, "cross/outputs")
        starts_ends = r["outputs"]
        assert len(starts_ends) == 2 * chunks  # two steps, k output exchanges each
        for step in range(2):
            spans = starts_ends[step * chunks:(step + 1) * chunks]
            for (_, end), (nxt_start, _) in zip(spans, spans[1:]):
                assert nxt_start < end  # chunk i+1's outputs were posted before chunk i's arrived
        assert r["overlap"]["cross/outputs"]["calls"] == 2 * chunks


@pytest.mark.distributed
def test_ranks_that_disagree_on_pipeline_chunks_are_refused(chunk_runs):
    for msg in chunk_runs[3]:
        assert "pipeline_chunks" in msg, msg


@pytest.mark.distributed
def test_hierarchical_async_dense_sync_is_bitwise_the_synchronous_one(chunk_runs):
    for r in chunk_runs[4]:
        assert r["same"], r
        assert r["buckets"] >= 3  # hierarchical dense buckets
        assert r["stats_sync"] == r["stats_async"]  # the same stages, bytes and calls
        assert r["stats_async"]["cross/dense_grads.ar"]["calls"] == 2 * r["buckets"]
        assert r["threads"] == ["dmt-hier-chain"]  # every cross-host stage ran on the helper, during backward


def test_pipeline_chunks_must_be_a_positive_integer():
    from dmt_compile.training.distributed import DistributedDmt

    for bad in (0, -1, 2.0, True):
        with pytest.raises(RuntimeSetupError, match="pipeline_chunks must be a positive integer") as info:
            DistributedDmt(None, None, pipeline_chunks=bad)
        assert "pipeline_chunks=1" in info.value.fix


def test_chunk_bounds_cover_the_batch_and_refuse_too_many_chunks():
    assert chunk_bounds(8, 3) == [(0, 3), (3, 6), (6, 8)]
    assert chunk_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(InputError, match="local batch of 3 samples cannot split into pipeline_chunks=4"):
        chunk_bounds(3, 4)


def test_outputs_are_joined_per_leaf_and_scalars_are_refused():
    a = (torch.ones(2, 1), {"x": torch.zeros(2)})
    b = (torch.full((1, 1), 2.0), {"x": torch.ones(1)})
    out = concat_outputs([a, b], [2, 1])
    assert torch.equal(out[0], torch.tensor([[1.0], [1.0], [2.0]])) and torch.equal(out[1]["x"], torch.tensor([0., 0, 1]))
    with pytest.raises(RuntimeSetupError, match="one row per sample"):
        concat_outputs([torch.tensor(1.0), torch.tensor(2.0)], [2, 2])
