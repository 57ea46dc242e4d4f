"""Full-duplex point-to-point exchange and the hierarchical all-reduce, on gloo.

The point-to-point path (every receive posted before any send) must return exactly what
``dist.all_to_all_single`` returns, for any counts (zeros, a member sending nothing, only the
local block), any group size (N-1 peers), dtypes and trailing shapes, and its backward must be
the reverse exchange. ``hierarchical_all_reduce_`` must equal a flat all-reduce and count its
bytes per link (only 1/L of the tensor crosses hosts).
"""
from __future__ import annotations

import random

import pytest
import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError
from dmt_compile.runtime import HierarchicalGroups, all_to_all_rows, hierarchical_all_reduce_, launch_local, recording
from dmt_compile.runtime import duplex
from dmt_compile.runtime.collectives import all_reduce_
from dmt_compile.topo.topology import Topology

pytestmark = pytest.mark.distributed


def _counts(rng: random.Random, g: int, case: str) -> list[list[int]]:
    """counts[i][j]: rows member i sends member j (same on every rank: shared seed)."""
    if case == "zeros":
        return [[0] * g for _ in range(g)]
    if case == "self_only":
        return [[3 if i == j else 0 for j in range(g)] for i in range(g)]
    if case == "one_silent":
        return [[0 if i == g - 1 else rng.randint(0, 4) for j in range(g)] for i in range(g)]
    return [[rng.choice([0, 0, 1, 2, 5]) for _ in range(g)] for _ in range(g)]


def _reference(x: torch.Tensor, send: list[int], recv: list[int], group) -> torch.Tensor:
    out = x.new_empty((sum(recv), *x.shape[1:]))
    dist.all_to_all_single(out, x, output_split_sizes=recv, input_split_sizes=send, group=group)
    return out


def _check_group(group, seed: int) -> int:
    """Compare p2p with all_to_all_single on `group` for every case; returns the number of checks."""
    g, me, my = dist.get_world_size(group), dist.get_rank(group), dist.get_rank()
    rng = random.Random(seed)
    checks = 0
    for case in ("random", "random", "zeros", "self_only", "one_silent"):
        counts = _counts(rng, g, case)
        send, recv = counts[me], [counts[j][me] for j in range(g)]
        for dtype, trailing in ((torch.float32, (3,)), (torch.float64, ()), (torch.int64, (2, 4)),
                                (torch.bfloat16, (5,))):
            x = (torch.arange(sum(send) * max(1, torch.Size(trailing).numel())) + 1000 * my).to(dtype)
            x = x.reshape(sum(send), *trailing)
            assert duplex.uses_p2p(group)
            got = duplex.exchange(x, send, recv, group, "test", "p2p")
            assert torch.equal(got, _reference(x, send, recv, group)), (case, dtype)
            with duplex.use_mode("collective"):
                assert not duplex.uses_p2p(group)
                assert torch.equal(duplex.exchange(x, send, recv, group, "test", "a2a"), got)
            checks += 1
        # autograd: the gradient of the rows I sent is the reverse exchange of the upstream gradient
        x = torch.randn(sum(send), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(my)).requires_grad_()
        y = all_to_all_rows(x, send, recv, group, "test")
        upstream = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(100 + my))
        (y * upstream).sum().backward()
        assert torch.equal(x.grad, _reference(upstream, recv, send, group)), case
        checks += 1
    return checks


def _check_tags(group) -> None:
    """Two exchanges in flight on one group with different tags, waited in reverse order."""
    g, me, my = dist.get_world_size(group), dist.get_rank(group), dist.get_rank()
    a = torch.full((2 * g, 2), float(my))
    b = torch.full((g, 3), float(-my))
    pa = duplex.start(a, [2] * g, [2] * g, group, "test", "tag1", tag=1)
    pb = duplex.start(b, [1] * g, [1] * g, group, "test", "tag2", tag=2)
    got_b, got_a = pb.wait(), pa.wait()
    ranks = dist.get_process_group_ranks(group) if group is not None else list(range(g))
    assert torch.equal(got_a, torch.tensor([float(r) for r in ranks]).repeat_interleave(2).unsqueeze(1).expand(-1, 2))
    assert torch.equal(got_b, torch.tensor([float(-r) for r in ranks]).unsqueeze(1).expand(-1, 3))
    assert me == ranks.index(my)


def _check_hierarchical(groups: HierarchicalGroups) -> dict:
    my, topo = dist.get_rank(), groups.topology
    out: dict = {}
    for numel, dtype in ((1001, torch.float32), (3, torch.float32), (64, torch.int64), (40, torch.float64)):
        g = torch.Generator().manual_seed(7 * my + numel)
        if dtype.is_floating_point:
            x = torch.randint(-50, 50, (numel,), generator=g).to(dtype)  # integer-valued: sums are exact
        else:
            x = torch.randint(-50, 50, (numel,), generator=g, dtype=dtype)
        flat = x.clone()
        all_reduce_(flat, None, "world")
        h = x.clone()
        with recording() as st:
            hierarchical_all_reduce_(h, groups.intra, groups.peer)
        assert torch.equal(h, flat), (numel, dtype)
        out[f"{numel}/{dtype}"] = st.snapshot(by_op=True)
    # random floats and a non-contiguous 2-D view: close to the flat sum, identical on every rank, mean
    x = torch.randn(12, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(my)).t()
    flat = x.clone()
    all_reduce_(flat, None, "world", average=True)
    hierarchical_all_reduce_(x, groups.intra, groups.peer, average=True)
    assert x.shape == (7, 12) and torch.allclose(x, flat, rtol=0, atol=1e-12)
    everyone = [None] * topo.world_size
    dist.all_gather_object(everyone, x.numpy().tobytes())
    assert len(set(everyone)) == 1
    return out


def worker(rank: int, topology: str) -> dict:
    groups = HierarchicalGroups.build(topology)
    checks = 0
    for seed, group in enumerate((None, groups.peer, groups.intra)):
        if dist.get_world_size(group) > 1:
            checks += _check_group(group, seed)
            _check_tags(group)
    res = {"checks": checks, "hier": _check_hierarchical(groups)}
    import os

    os.environ["DMT_ALL_TO_ALL"] = "collective"  # read at each call, so a launcher's env takes effect
    res["env_collective"] = not duplex.uses_p2p(groups.peer)
    del os.environ["DMT_ALL_TO_ALL"]
    try:
        with duplex.use_mode("fast"):
            pass
    except CollectiveError as exc:
        res["bad_mode"] = str(exc)
    return res


def _chunks(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


@pytest.mark.parametrize("topology", ["2x2", "3x1", "2x3"])
def test_p2p_exact_and_hierarchical_all_reduce(topology):
    results = launch_local(worker, topology, args=(topology,), timeout_s=120)
    topo = Topology(*map(int, topology.split("x")))
    N, L = topo.num_hosts, topo.local_size
    for rank, res in enumerate(results):
        assert res["checks"] > 0 and res["env_collective"]
        assert "unknown all-to-all mode 'fast'" in res["bad_mode"] and "auto" in res["bad_mode"]
        me = rank % L
        for key, stats in res["hier"].items():
            numel, dtype = key.split("/")
            es = torch.tensor([], dtype=getattr(torch, dtype.split(".")[1])).element_size()
            sizes = _chunks(int(numel), L)
            if L > 1:  # reduce-scatter sends every other chunk once, all-gather my chunk to L-1 members
                rs = stats["intra/hier_all_reduce.rs"]["bytes_sent"]
                ag = stats["intra/hier_all_reduce.ag"]["bytes_sent"]
                assert rs == (int(numel) - sizes[me]) * es and ag == (L - 1) * sizes[me] * es
            else:
                assert not any(k.startswith("intra/") for k in stats)
            # across hosts only my chunk: the all-reduce model of c = sizes[me] elements over N ranks
            cross = stats["cross/hier_all_reduce.ar"]["bytes_sent"]
            c = _chunks(sizes[me], N)
            h = rank // L
            assert cross == (sizes[me] - c[h] + (N - 1) * c[h]) * es
            # a flat all-reduce of the whole tensor over the world would send ~2 (W-1)/W of it
            flat_bytes = 2 * (topo.world_size - 1) / topo.world_size * int(numel) * es
            if int(numel) >= 64 and L > 1:
                assert cross < flat_bytes / L * 1.2
