"""The bench's gradient sync with the hierarchical all-reduce gives the same gradients as
ShardedDmt.sync_gradients (flat all-reduce over the world), for flat, SPTT and SPTT+TM."""
from __future__ import annotations

import os

import pytest
import torch

from conftest import ROOT
from dmt_compile.runtime.launch import launch_local

pytestmark = pytest.mark.distributed


def worker(rank: int) -> dict:
    from dataclasses import replace

    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.groups import HierarchicalGroups
    from benchmarks.emulated.model import MODEL_SPEC
    from benchmarks.emulated.worker import BenchOptions, DmtRun

    groups = HierarchicalGroups.build("2x2")
    opts = BenchOptions((), MODEL_SPEC, 2, 2, 16, 1, 0, dense_sync="hierarchical")
    out = {}
    for strategy, c in (("flat", None), ("sptt", None), ("sptt_tm", 4.0)):
        grads = []
        for sync in ("hierarchical", "flat"):
            run = DmtRun(strategy, c, replace(opts, dense_sync=sync), groups, rank)
            loss = run.sharded.gm(*run.local).pow(2).mean()
            loss.backward()
            with recording() as st:
                run.sync()
            grads.append({n: p.grad.clone() for n, p in run.sharded.named_parameters() if p.grad is not None})
            if sync == "hierarchical":
                cross = sum(v["bytes_sent"] for k, v in st.snapshot(by_op=True).items() if k.startswith("cross/"))
        a, b = grads
        out[strategy] = {"same_keys": a.keys() == b.keys(), "max_diff": max((a[k] - b[k]).abs().max().item() for k in a),
                         "cross_bytes": cross}
    return out


def test_hierarchical_dense_sync_matches_sync_gradients():
    env = {"PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "tests"), ROOT])}
    for r in launch_local(worker, "2x2", timeout_s=240, env=env):
        for strategy, res in r.items():
            assert res["same_keys"], strategy
            assert res["max_diff"] < 1e-6, (strategy, res)
            assert res["cross_bytes"] > 0  # the dense gradients crossed hosts as 1/L chunks
