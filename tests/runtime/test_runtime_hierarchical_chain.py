"""The hierarchical all-reduce as an asynchronous chain (`HierarchicalChain`): many buckets of mixed
sizes and dtypes give bitwise what the synchronous `hierarchical_all_reduce_` gives, counted with the
same bytes; the cross-host stage runs on the helper thread; a failed stage fails its bucket and every
later one."""
from __future__ import annotations

import threading

import pytest
import torch
import torch.distributed as dist

from dmt_compile.runtime import HierarchicalGroups, hierarchical_all_reduce_, launch_local, recording
from dmt_compile.runtime import comm_stats
from dmt_compile.runtime.hierarchical_chain import ChainedAllReduce, HierarchicalChain, chain_supported

SIZES = ((1001, torch.float32), (3, torch.float32), (1, torch.float64), (64, torch.int64), (257, torch.float32))


def chain_worker(rank: int, topology: str) -> dict:
    groups = HierarchicalGroups.build(topology)
    tensors = []
    for numel, dtype in SIZES:
        g = torch.Generator().manual_seed(11 * rank + numel)
        x = torch.randn(numel, generator=g).to(dtype) if dtype.is_floating_point else \
            torch.randint(-50, 50, (numel,), generator=g, dtype=dtype)
        tensors.append(x)
    sync = [t.clone() for t in tensors]
    with recording() as st_sync:
        for t in sync:
            hierarchical_all_reduce_(t, groups.intra, groups.peer, op="b")
    threads: list[str] = []
    comm_stats.add_observer(lambda e: threads.append(threading.current_thread().name) if e.op == "b.ar" else None)
    chained = [t.clone() for t in tensors]
    with recording() as st_chain:
        chain = HierarchicalChain(groups.intra, groups.peer, op="b")
        handles = [chain.submit(t) for t in chained]
        outs = [h.wait() for h in handles]
        chain.close()
    same = all(torch.equal(a, b) and o is b for a, b, o in zip(sync, chained, outs))
    return {"same": same, "sync": st_sync.snapshot(by_op=True), "chain": st_chain.snapshot(by_op=True),
            "threads": sorted(set(threads)), "p2p": chain_supported(groups.intra, groups.peer),
            "alive": chain._thread is not None}


@pytest.mark.distributed
@pytest.mark.parametrize("topology", ["2x2", "2x3"])
def test_chain_is_bitwise_the_synchronous_hierarchical_all_reduce(topology):
    for r in launch_local(chain_worker, topology, args=(topology,), timeout_s=180):
        assert r["same"] and r["p2p"] and not r["alive"], r
        assert r["sync"] == r["chain"]  # same stages, same bytes, same calls
        assert r["chain"]["cross/b.ar"]["calls"] == len(SIZES) and r["chain"]["intra/b.ag"]["calls"] == len(SIZES)
        assert r["threads"] == ["dmt-hier-chain"]  # the cross-host stage ran on the helper thread


class _Failing:
    """A stand-in bucket whose reduce-scatter fails (no process group needed)."""

    def __init__(self, fail: bool):
        self.fail = fail

    def scattered(self):
        if self.fail:
            raise RuntimeError("peer gone")
        return torch.ones(2)

    def across(self, mine):
        return mine

    def start_gather(self, mine, tag):
        return None

    def write(self, full):
        return full


def test_a_failed_stage_fails_its_bucket_and_every_later_one():
    chain = HierarchicalChain(None, None, op="b")
    handles = [ChainedAllReduce(_Failing(f)) for f in (False, True, False)]
    chain._thread = threading.Thread(target=chain._run, daemon=True)
    chain._thread.start()
    for h in handles:
        chain._queue.put(h)
    assert torch.equal(handles[0].wait(), torch.ones(2))
    for h in handles[1:]:
        with pytest.raises(RuntimeError, match="peer gone"):
            h.wait()
    chain.close()
    assert chain._thread is None
