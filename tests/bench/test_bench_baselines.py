"""The bench's baselines: TorchRec's tower sharding of the sptt_tm model, TorchRec placements, and wire
bytes from the NIC counters for the rows whose collectives are not counted per call."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.emulated.bound import NIC_SOURCE, add_honest_bounds, non_wire_times, wire_from_nic
from benchmarks.emulated.headline import add_claims
from benchmarks.emulated.nic import step_bytes, window_bytes, window_bytes_range

from conftest import ROOT, has_torchrec

needs_torchrec = pytest.mark.skipif(not has_torchrec(), reason="torchrec is not installed")
WIRE_EFF = 1448 / 1514


def _opts(h: int = 2, l: int = 2, b: int = 4, feed: str = "auto") -> SimpleNamespace:
    return SimpleNamespace(num_hosts=h, local_size=l, world=h * l, per_rank_batch=b, seed=0, lr=0.01,
                           tower_module="linear", feed=feed)


# ---- TorchRec's towers: the same model as sptt_tm ------------------------------------------------------
@needs_torchrec
@pytest.mark.parametrize("feed", ["auto", "decoder"])
def test_tower_collection_and_rest_compute_the_sptt_tm_model(feed):
    from dmt_compile.interop.torchrec_towers import to_torchrec_towers

    from benchmarks.emulated.torchrec_towers import (TowersModel, _models, feature_groups, output_order,
                                                     rest_after_towers)

    opts = _opts(b=32, feed=feed)  # a global batch of 128: the transforms saw 64 rows (EXAMPLE_BATCH)
    ours, theirs, (dense, sparse) = _models(opts, 4.0)
    groups = feature_groups(ours)
    assert groups == feature_groups(theirs) and len(groups) == 2  # the sptt_tm row's towers, pinned
    assert sorted(f for g in groups for f in g) == sorted(f"C{i}" for i in range(1, 27))
    etc, plan, export = to_torchrec_towers(theirs)
    root = TowersModel(etc, rest_after_towers(theirs, output_order(export.hosts, 1)))  # unsharded: tower order
    assert not [n for n, _ in root.rest.named_parameters() if "embedding_bags" in n]  # tables only in etc
    from benchmarks.emulated.model import to_kjt

    kjt = to_kjt(sparse)
    flat = theirs.input_spec.flatten((dense, kjt), {})
    with torch.no_grad():
        assert torch.allclose(root(flat, kjt), theirs(dense, kjt), atol=1e-6)
        # and the bench model's own sptt_tm transform (same tables and dense weights, same towers)
        assert ours.plan.details[0].width_out == theirs.plan.details[0].width_out


def test_output_order_is_host_by_host():
    from benchmarks.emulated.torchrec_towers import output_order, take_slice

    assert output_order([0, 1, 0, 1], 2) == [0, 2, 1, 3]
    assert output_order([1, 0], 2) == [1, 0]
    x = torch.arange(12.0).reshape(2, 6)
    assert torch.equal(take_slice(x, 2, (2, 2)), x[:, 2:6].reshape(2, 2, 2))


def _towers_numerics(rank: int, h: int, l: int) -> dict:
    """TorchRec's sharded towers (tables copied in) against the single-process transformed model."""
    from torch.distributed._shard.sharded_tensor import ShardedTensor

    from benchmarks.emulated.torchrec_towers import build_towers, local_inputs

    b = 4
    build = build_towers(_opts(h, l, b), 4.0)
    with torch.no_grad():
        for name, t in build.dmp.state_dict().items():
            key = name.removeprefix("_dmp_wrapped_module.").removeprefix("module.")
            src = build.state[key]
            if isinstance(t, ShardedTensor):
                for sh in t.local_shards():
                    start = sh.metadata.shard_offsets[0]
                    sh.tensor.copy_(src[start:start + sh.metadata.shard_sizes[0]])
            else:
                t.copy_(src)
    flat, kjt = local_inputs(build, rank, b)
    out = build.dmp(flat, kjt)
    out = out.wait() if not isinstance(out, torch.Tensor) and hasattr(out, "wait") else out
    dense, sparse = build.inputs
    from benchmarks.emulated.model import to_kjt

    with torch.no_grad():
        ref = build.theirs(dense, to_kjt(sparse))[rank * b:(rank + 1) * b]
    err = float((out.detach() - ref).abs().max())
    out.sum().backward()
    grads = [p.grad for p in build.dmp.parameters() if p.grad is not None]
    return {"err": err, "refusal": build.refusal, "grads": len(grads), "placement": build.placement,
            "finite": all(bool(torch.isfinite(g).all()) for g in grads)}


@needs_torchrec
@pytest.mark.distributed
def test_torchrec_tower_sharding_runs_on_cpu_gloo_and_matches_one_process():
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import Topology

    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests", "bench"), os.path.join(ROOT, "tests"), ROOT])}
    results = launch_local(_towers_numerics, Topology(2, 2), args=(2, 2), timeout_s=400, env=env)
    for r in results:
        # TorchRec's own sharder refuses a CPU collection: DDP gets device_ids=[cpu] for each interaction
        assert r["refusal"].startswith("ValueError: DistributedDataParallel device_ids and output_device"), r
        assert r["err"] < 1e-5, r  # the CPU sharder's towers compute the transformed model
        assert r["grads"] > 0 and r["finite"]
        assert r["placement"] == {"tables_per_host": [13, 13], "compute_kernels": ["dense"]}  # a tower per host


# ---- TorchRec placements ---------------------------------------------------------------------------
@needs_torchrec
def test_torchrec_table_placements_per_host():
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan

    from benchmarks.emulated.model import TorchRecDLRM
    from benchmarks.emulated.torchrec_worker import _per_param, host_balanced_ranks, tables_per_host

    assert host_balanced_ranks(4, 2) == [0, 2, 1, 3] and host_balanced_ranks(8, 4) == [0, 4, 1, 5, 2, 6, 3, 7]
    model = TorchRecDLRM(device="meta")
    per_host = {}
    for kind in ("table_wise", "row_wise", "table_row_wise"):
        plan = construct_module_sharding_plan(model.ebc, _per_param(kind, model.names, 4, 2),
                                              sharder=EmbeddingBagCollectionSharder(), local_size=2, world_size=4,
                                              device_type="cpu")
        per_host[kind] = tables_per_host(plan, 4, 2)
    # TW and TWRW: 13 whole tables per host (not 14/12); RW: every table spans both hosts
    assert per_host == {"table_wise": [13, 13], "row_wise": [0, 0], "table_row_wise": [13, 13]}


def test_flat_row_states_its_host_aware_placement():
    from benchmarks.emulated.worker import lookups_per_host

    owners = {0: [i % 4 for i in range(26)]}
    assert lookups_per_host(owners, SimpleNamespace(num_hosts=2, local_size=2)) == [14, 12]
    owners = {0: [[0, 2, 1, 3][i % 4] for i in range(26)] + [-1]}  # -1: row-wise, on no one host
    assert lookups_per_host(owners, SimpleNamespace(num_hosts=2, local_size=2)) == [13, 13]


def test_a_compressing_baseline_is_not_lossless():
    def row(run, strategy, t, c):
        return {"run": run, "strategy": strategy, "wire_dtype": "fp32", "compression_effective": c,
                "step_samples_s": [t] * 30, "exchange_time_median_s": t / 2}

    rows = [row("flat", "flat", 1.0, 1.0), row("torchrec_tw", "torchrec_tw", 0.9, 1.0),
            row("torchrec_towers@4", "torchrec_towers", 0.4, 4.0), row("sptt_tm@4", "sptt_tm", 0.3, 4.0)]
    assert add_claims(rows)["best_baseline"] == "torchrec_tw"  # towers@4 compresses: not of equal quality


def test_strategy_list_runs_torchrec_towers_per_compression():
    from benchmarks.emulated.runner import BenchConfig, strategy_list

    runs, skipped = strategy_list(BenchConfig(strategies=("flat", "torchrec_towers", "sptt_tm"),
                                              compressions=(4.0, 16.0)))
    if has_torchrec():
        assert ("torchrec_towers", 4.0, "fp32") in runs and ("torchrec_towers", 16.0, "fp32") in runs
        assert "torchrec_towers" not in skipped
    else:
        assert "torchrec_towers" in skipped


# ---- wire bytes from the NIC counters --------------------------------------------------------------
def _trace(rate: float = 1e6, n: int = 200, dt: float = 0.01):
    """A NIC sending `rate` bytes/s and receiving half of it, sampled every `dt`."""
    return [(k * dt, int(rate * k * dt), int(rate * k * dt / 2)) for k in range(n)]


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.0, 1.9), b=st.floats(0.0, 1.9), c=st.floats(0.0, 1.9))
def test_window_bytes_add_up(a, b, c):
    a, b, c = sorted((a, b, c))
    trace = _trace()
    (ab, bc, ac) = window_bytes(trace, [(a, b), (b, c), (a, c)])
    assert ab[0] + bc[0] == pytest.approx(ac[0], abs=2) and ac[0] == pytest.approx(1e6 * (c - a), abs=2)
    assert ac[1] == pytest.approx(ac[0] / 2, abs=2)


@settings(max_examples=40, deadline=None)
@given(a=st.floats(0.0, 1.9), width=st.floats(0.0, 0.5), gap=st.integers(1, 30))
def test_window_byte_range_brackets_the_interpolation(a, width, gap):
    trace = _trace()[::gap]  # a sampler that fell behind samples every gap x 10 ms
    b = min(a + width, trace[-1][0])
    a = min(a, b)
    (lo_tx, hi_tx, lo_rx, hi_rx), = window_bytes_range(trace, [(a, b)])
    (tx, rx), = window_bytes(trace, [(a, b)])
    assert lo_tx <= tx + 1e-6 and tx <= hi_tx + 1e-6 and lo_rx <= rx + 1e-6 and rx <= hi_rx + 1e-6
    s = step_bytes([(tx, rx)], [(lo_tx, hi_tx, lo_rx, hi_rx)])
    assert s["busiest_range"] == [lo_tx, hi_tx]


def test_window_bytes_refuses_windows_outside_the_trace():
    assert window_bytes(_trace(), [(0.5, 3.0)]) is None and window_bytes([], [(0, 1)]) is None
    s = step_bytes(window_bytes(_trace(), [(0.1, 0.3), (0.5, 0.6), (1.0, 1.2)]))
    assert s["busiest_bytes"] == pytest.approx(2e5, rel=1e-6) and s["rx_bytes_median"] == pytest.approx(1e5)


def _row(run, step, nic_bytes, rate_bytes, measured=None, counted=True):
    r = {"run": run, "strategy": run, "step_time_median_s": step, "exchange_time_median_s": step / 2,
         "nic_bytes_busiest_direction": nic_bytes, "nic_limit_s": nic_bytes / (rate_bytes * WIRE_EFF),
         "step_samples_s": [step] * 30, "wire_dtype": "fp32"}
    if not counted:
        r["wire_counted"] = False
    if measured is not None:
        r["nic"] = {"measured_host0": {"busiest_bytes": measured}}
    return r


def test_rows_without_counted_bytes_take_them_from_the_nic():
    rate = 10e6  # bytes/s at the timed rate; 1 GB/s unthrottled
    flat = _row("flat", 1.0, 8e6, rate, measured=8.2e6 / WIRE_EFF)
    rw = _row("torchrec_rw", 0.8, 1e6, rate, measured=6e6 / WIRE_EFF, counted=False)  # reduce-scatter unseen
    rw_blind = _row("torchrec_twrw", 0.9, 1e6, rate, counted=False)  # no trace: stays uncounted
    for r in (flat, rw, rw_blind):
        wire_from_nic(r, rate * 8, 2)
    assert flat["wire_source"] == "counted payload" and flat["nic_measured_vs_counted"] == pytest.approx(1.025)
    assert flat["nic_measured_spread"] == 0.0  # no range given: nothing to be off by
    assert flat["nic_bytes_busiest_direction"] == 8e6  # counted rows keep their counted bytes
    assert rw["wire_source"] == NIC_SOURCE and rw["wire_counted"] is True
    assert rw["nic_bytes_busiest_direction"] == pytest.approx(6e6)
    assert rw["nic_limit_s"] == pytest.approx(6e6 / (rate * WIRE_EFF))
    assert rw["nic_bytes_counted_busiest_direction"] == 1e6
    unthrottled = {"flat": _row("flat", 0.2, 8e6, 1e9), "torchrec_rw": _row("torchrec_rw", 0.3, 1e6, 1e9),
                   "torchrec_twrw": _row("torchrec_twrw", 0.3, 1e6, 1e9)}
    non_wire = non_wire_times(unthrottled, [flat, rw, rw_blind], 8e9)
    assert non_wire["torchrec_rw"] == pytest.approx(0.3 - 6e6 / (1e9 * WIRE_EFF))  # NIC bytes, not counted ones
    assert non_wire["flat"] == pytest.approx(0.2 - 8e6 / (1e9 * WIRE_EFF))
    rows = [flat, rw, rw_blind]
    for r in rows:
        r["cpu_bound_s"] = 0.1  # the box's floor for each row's CPU work: below every wire time here
    add_claims(rows)
    add_honest_bounds(rows, non_wire)
    assert rw["floor_s"] == pytest.approx(rw["nic_limit_s"])  # the roofline: its NIC-counted wire
    assert rw["bound"] == pytest.approx(1.0 / rw["nic_limit_s"])
    assert rw["no_overlap_step_s"] == pytest.approx(non_wire["torchrec_rw"] + rw["nic_limit_s"])
    assert rw["efficiency"] is not None and rw_blind["bound"] is None


def test_quality_trains_torchrec_towers_as_the_sptt_tm_model():
    from benchmarks.emulated.quality import _build, _exact
    from benchmarks.emulated.model import factory

    assert _exact(("torchrec_tw", None, "fp32")) and not _exact(("torchrec_towers", 4.0, "fp32"))
    model, inputs = factory(batch_size=8)
    cfg = SimpleNamespace(num_hosts=2, local_size=2, tower_module="linear", feed="auto")
    built = _build(("torchrec_towers", 4.0, "fp32"), model, inputs, cfg)
    assert built.plan.num_towers == 2 and sum(d.width_out for d in built.plan.details) == 26 * 64 // 4
