"""The hidden-exchange counter: an exchange posted before compute and waited after it counts as
hidden, a blocking one as exposed; byte counters stay as they were (timings live apart)."""
from __future__ import annotations

import time

import pytest
import torch

from dmt_compile.runtime.launch import launch_local
from dmt_compile.runtime.overlap_stats import hidden_fraction, overlap_snapshot, record_overlap, reset_overlap


def worker(rank: int) -> dict:
    import torch.distributed as dist

    from dmt_compile.runtime import duplex
    from dmt_compile.runtime.comm_stats import recording

    reset_overlap()
    group = dist.group.WORLD
    x = torch.ones(1000)
    with recording() as stats:
        for _ in range(3):
            p = duplex.start(x, [500, 500], [500, 500], group, "test", "overlapped")
            time.sleep(0.2)  # compute while the exchange is in flight
            p.wait()
            dist.barrier()
            if rank == 0:
                time.sleep(0.2)  # rank 0 posts late; rank 1 posts and waits at once: it blocks until rank 0 sends
            p = duplex.start(x, [500, 500], [500, 500], group, "test", "blocking")
            p.wait()
    snap = overlap_snapshot()
    return {"snap": snap, "all": hidden_fraction("test/"), "bytes": stats.snapshot(by_op=True)}


@pytest.mark.distributed
def test_hidden_fraction_of_overlapped_and_blocking_exchanges():
    results = launch_local(worker, "1x2", timeout_s=120)
    for rank, r in enumerate(results):
        over, block = r["snap"]["test/overlapped"], r["snap"]["test/blocking"]
        assert over["calls"] == 3 and over["hidden"] > 0.8, r
        assert set(r["bytes"]["test/overlapped"]) == {"calls", "bytes_sent", "bytes_recv", "messages_sent",
                                                      "messages_recv"}
        if rank == 1:
            assert block["hidden"] < 0.2 and block["exposed_s"] > 0.3, r
        assert 0 < r["all"] < 1


def test_counters_accumulate_and_reset():
    reset_overlap()
    record_overlap("cross", "ids", 0.3, 0.1)
    record_overlap("cross", "ids", 0.1, 0.1)
    record_overlap("intra", "emb", 0.0, 0.2)
    snap = overlap_snapshot()
    assert snap["cross/ids"]["calls"] == 2 and abs(snap["cross/ids"]["hidden"] - 0.4 / 0.6) < 1e-9
    assert abs(hidden_fraction() - 0.4 / 0.8) < 1e-9 and hidden_fraction("intra/") == 0.0
    reset_overlap()
    assert overlap_snapshot() == {} and hidden_fraction() == 0.0
