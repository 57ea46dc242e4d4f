"""Deduplicated cross-host id exchange: bitwise the outputs and gradients of the plain exchange
(weighted jagged bags, fixed-size bags, a sequence feature, one-hot ids; identity and dot Tower
Modules), and the distinct ids it sends equal the analytic count of distinct ids per (rank, table)
bound for another host; the index dtype rule; the bench's Zipf workload."""
from __future__ import annotations

import os

import sys

import pytest
import torch

from conftest import ROOT
from dmt_compile.runtime.id_dedup import dedup_streams, index_dtype
from dmt_compile.runtime.launch import launch_local
from dmt_compile.runtime.wire import Stream
from benchmarks.emulated.id_workload import distinct_ids, multi_hot, zipf_ids

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)  # dedup_workers


@pytest.mark.distributed
@pytest.mark.parametrize("zipf, tower_module", [(1.1, "identity"), (0.0, "dot")])
def test_dedup_ids_are_exact_and_send_the_analytic_distinct_count(zipf, tower_module):
    env = {"PYTHONPATH": os.pathsep.join([HERE, ROOT])}
    from dedup_workers import worker

    results = launch_local(worker, "2x2", args=(zipf, tower_module), timeout_s=240, env=env)
    for r in results:
        assert r["same"], r
        assert 0 < r["unique_bytes"] <= 1.1 * r["analytic"], r  # the target: <= 1.1x the analytic count
        assert r["unique_bytes"] == r["analytic"], r  # in fact exactly it
        assert {"cross/ids.unique", "cross/ids.inverse"} <= set(r["ops"]) and "cross/ids.values" not in r["ops"]
        if zipf > 0:
            assert r["dedup_bytes"] < r["plain_bytes"], r


@pytest.mark.distributed
def test_ranks_that_disagree_on_dedup_are_refused():
    from dedup_workers import mixed_dedup

    from dmt_compile.errors import CollectiveError

    env = {"PYTHONPATH": os.pathsep.join([HERE, ROOT])}
    with pytest.raises(CollectiveError) as info:
        launch_local(mixed_dedup, "2x2", timeout_s=200, env=env)
    assert "RuntimeSetupError" in str(info.value) and "different plan" in str(info.value)


def test_dedup_ids_must_be_a_bool():
    import dmt_compile
    from dedup_workers import make

    from dmt_compile.errors import RuntimeSetupError
    from dmt_compile.training.sharded import ShardedDmt

    model, inputs = make(8, 1.1)
    with pytest.raises(RuntimeSetupError, match="dedup_ids must be True or False"):
        ShardedDmt(dmt_compile.transform(model, "2x2", inputs), groups=None, dedup_ids="yes")


def test_index_dtype_is_the_narrowest_that_indexes_the_distinct_ids():
    assert [index_dtype(n) for n in (0, 1, 256, 257, 32768, 32769, 2 ** 31)] == [
        torch.uint8, torch.uint8, torch.uint8, torch.int16, torch.int16, torch.int32, torch.int32]
    for n in (256, 32768):  # the largest index fits
        assert torch.tensor([n - 1]).to(index_dtype(n)).to(torch.int64).item() == n - 1


def test_dedup_streams_rebuild_every_stream_in_order():
    g = torch.Generator().manual_seed(0)
    streams = [Stream(zipf_ids((n,), 50, 1.2, g, t), torch.ones(n, dtype=torch.int64), None)
               for t, n in enumerate((40, 0, 7))]
    unique, inverse = dedup_streams(streams)
    assert torch.equal(unique[inverse], torch.cat([s.values for s in streams]))
    assert unique.numel() == sum(distinct_ids(s.values) for s in streams)


def test_zipf_workload_repeats_head_ids_and_bags_have_the_asked_sizes():
    g = torch.Generator().manual_seed(0)
    skewed, uniform = zipf_ids((20_000,), 2000, 1.1, g), zipf_ids((20_000,), 2000, 0.0, g)
    assert skewed.min() >= 0 and skewed.max() < 2000
    assert distinct_ids(skewed) < distinct_ids(uniform)
    assert torch.bincount(skewed).max() > 0.1 * skewed.numel()  # the head id: ~16 % of the draws at s = 1.1
    values, offsets = multi_hot(64, 20, 2000, 1.1, g)
    assert offsets.tolist() == list(range(0, 64 * 20, 20)) and values.numel() == 64 * 20
    values, offsets = multi_hot(64, 5, 100, 1.1, g, ragged=True)
    lengths = torch.diff(torch.cat([offsets, offsets.new_tensor([values.numel()])]))
    assert lengths.min() >= 1 and lengths.max() <= 9


def test_bench_model_multi_hot_from_arguments_or_environment(monkeypatch):
    from torch import nn

    from benchmarks.emulated.model import factory

    model, (dense, sparse) = factory(batch_size=8, num_sparse=3, ids_per_feature=5, zipf=1.1)
    assert sparse["C1"].shape == (8, 5) and isinstance(model.tables["C1"], nn.EmbeddingBag)
    assert model(dense, sparse).shape == (8, 1)
    monkeypatch.setenv("DMT_BENCH_IDS_PER_FEATURE", "4")
    monkeypatch.setenv("DMT_BENCH_ZIPF", "1.1")
    _, (_, sparse) = factory(batch_size=8, num_sparse=2)
    assert sparse["C2"].shape == (8, 4)
    monkeypatch.delenv("DMT_BENCH_IDS_PER_FEATURE")
    monkeypatch.delenv("DMT_BENCH_ZIPF")
    model, (_, sparse) = factory(batch_size=8, num_sparse=2)  # the one-hot default is unchanged
    assert sparse["C1"].shape == (8,) and isinstance(model.tables["C1"], nn.Embedding)


def test_bench_cli_refuses_a_negative_zipf(capsys):
    import io

    from dmt_compile.tools.cli import main

    out = io.StringIO()
    assert main(["bench", "--zipf", "-1", "--no-torchrec"], stdout=out) == 2
    assert out.getvalue() == ""  # stdout is the report; the typed error goes to stderr
    assert "InputError: --zipf must be >= 0" in capsys.readouterr().err
