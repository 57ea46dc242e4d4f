"""Collectives on gloo: uneven/zero counts, multi-dim rows, autograd, jagged ids, grads sync, CommStats."""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError, RuntimeSetupError
from dmt_compile.runtime import (
    HierarchicalGroups,
    all_gather_rows,
    all_reduce_mean_grads,
    all_reduce_sum_grads,
    all_to_all_jagged,
    all_to_all_rows,
    check_fingerprint,
    exchange_counts,
    launch_local,
    recording,
)
from dmt_compile.topo.topology import Topology

pytestmark = pytest.mark.distributed

TRAILING = (2, 3)
ROW_BYTES_F64 = 2 * 3 * 8


# ----------------------------------------------------------------- deterministic data shared by workers and parent


def cnt(i: int, j: int, salt: int, g: int) -> int:
    """Rows member i sends member j: uneven, with zeros; member g-1 sends nothing when salt == 0."""
    if salt == 0 and i == g - 1:
        return 0
    return (i * 3 + j * 5 + salt) % 4


def block(src_global: int, dst_index: int, n: int, dtype=torch.float64) -> torch.Tensor:
    base = src_global * 1000 + dst_index * 100 + torch.arange(n, dtype=torch.float64)
    t = torch.arange(6, dtype=torch.float64).view(1, *TRAILING) * 0.125
    return (base.view(n, 1, 1) + t).to(dtype)


def weight(src_global: int, dst_index: int, n: int) -> torch.Tensor:
    w = 1 + 0.5 * src_global + 0.25 * torch.arange(n, dtype=torch.float64) + 0.125 * dst_index
    return w.view(n, 1, 1) * (1 + torch.arange(6, dtype=torch.float64).view(1, *TRAILING))


def _ranks(group) -> list[int]:
    return list(dist.get_process_group_ranks(group)) if group is not None else list(range(dist.get_world_size()))


def check_rows(group, label: str, salt: int) -> dict:
    """Uneven a2a with autograd on `group`; asserts values and gradient; returns the stats of the forward."""
    ranks = _ranks(group)
    g, me, my = len(ranks), dist.get_rank(group), dist.get_rank()
    send = [cnt(me, j, salt, g) for j in range(g)]
    recv = [cnt(j, me, salt, g) for j in range(g)]
    x = torch.cat([block(my, j, send[j]) for j in range(g)]).requires_grad_(True)
    with recording() as st:
        y = all_to_all_rows(x, send, recv, group, label)
    fwd = st.snapshot(by_op=True)
    expected = torch.cat([block(ranks[j], me, recv[j]) for j in range(g)])
    assert torch.equal(y, expected), (label, y, expected)
    # autograd: loss = sum(W * y) with W known per (src, dst, row) => dL/dx = W of the rows I sent
    w = torch.cat([weight(ranks[j], me, recv[j]) for j in range(g)])
    with recording() as st_bwd:
        (y * w).sum().backward()
    grad_expected = torch.cat([weight(my, j, send[j]) for j in range(g)])
    assert torch.equal(x.grad, grad_expected), (label, x.grad, grad_expected)
    # recv_counts learned by exchange, and the check path
    y2 = all_to_all_rows(x.detach(), send, None, group, label)
    assert torch.equal(y2, expected)
    y3 = all_to_all_rows(x.detach(), send, recv, group, label, check_counts=True)
    assert torch.equal(y3, expected)
    return {"fwd": fwd, "bwd": st_bwd.snapshot(by_op=True)}


def check_dtypes(group, label: str) -> None:
    ranks = _ranks(group)
    g, me, my = len(ranks), dist.get_rank(group), dist.get_rank()
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        send = [cnt(me, j, 1, g) for j in range(g)]
        recv = [cnt(j, me, 1, g) for j in range(g)]
        x = torch.cat([block(my, j, send[j], dtype).reshape(send[j], 6) for j in range(g)])
        y = all_to_all_rows(x, send, recv, group, label)
        assert y.dtype == dtype
        assert torch.equal(y, torch.cat([block(ranks[j], me, recv[j], dtype).reshape(recv[j], 6) for j in range(g)]))
    # 1-D int64 and an all-zero exchange
    y = all_to_all_rows(torch.arange(g, dtype=torch.int64) + 10 * my, [1] * g, [1] * g, group, label)
    assert y.tolist() == [10 * r + me for r in ranks]
    z = all_to_all_rows(torch.zeros(0, 4), [0] * g, [0] * g, group, label)
    assert z.shape == (0, 4)


def jagged_sample(src_global: int, dst_index: int):
    """Samples rank src sends member dst: lengths (some 0) and ids encoding (src, dst, sample, pos)."""
    n = (src_global + 2 * dst_index) % 3  # 0..2 samples
    lengths = [(src_global + s + dst_index) % 3 for s in range(n)]
    ids = [src_global * 10000 + dst_index * 1000 + s * 10 + p for s in range(n) for p in range(lengths[s])]
    return lengths, ids


def check_jagged(group, label: str) -> None:
    ranks = _ranks(group)
    g, me, my = len(ranks), dist.get_rank(group), dist.get_rank()
    lengths, ids, seg = [], [], []
    for j in range(g):
        ln, iv = jagged_sample(my, j)
        lengths += ln
        ids += iv
        seg.append(len(ln))
    values = torch.tensor(ids, dtype=torch.int64)
    weights = values.to(torch.float32) * 0.5
    out = all_to_all_jagged(values, torch.tensor(lengths, dtype=torch.int64), seg, group, label, weights=weights)
    exp_len, exp_ids, exp_seg, exp_nv = [], [], [], []
    for j in range(g):
        ln, iv = jagged_sample(ranks[j], me)
        exp_len += ln
        exp_ids += iv
        exp_seg.append(len(ln))
        exp_nv.append(len(iv))
    assert out.lengths.tolist() == exp_len
    assert out.values.tolist() == exp_ids
    assert out.segments == exp_seg and out.value_counts == exp_nv
    assert torch.equal(out.weights, out.values.to(torch.float32) * 0.5)
    # round trip: send everything back to where it came from
    back = all_to_all_jagged(out.values, out.lengths, out.segments, group, label)
    assert back.values.tolist() == ids and back.lengths.tolist() == lengths and back.segments == seg


def check_all_gather(group, label: str) -> None:
    ranks = _ranks(group)
    g, me, my = len(ranks), dist.get_rank(group), dist.get_rank()
    x = block(my, 0, my % 3).requires_grad_(True)  # uneven, rank 0 and 3 contribute 0 rows / 0 rows
    y = all_gather_rows(x, group, label)
    assert torch.equal(y, torch.cat([block(r, 0, r % 3) for r in ranks]))
    # each member weighs the gathered rows by (1 + its own index); dL/dx = sum over members = sum(1 + i)
    (y * (1 + me)).sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, sum(1 + i for i in range(g))))


def check_grads(groups: HierarchicalGroups) -> dict:
    my, intra = dist.get_rank(), groups.intra_ranks
    a = torch.nn.Parameter(torch.zeros(3, 2))
    b = torch.nn.Parameter(torch.zeros(5))
    c = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))  # grad only on local index 0
    frozen = torch.nn.Parameter(torch.zeros(1), requires_grad=False)
    d = torch.nn.Parameter(torch.zeros(4))  # grad nowhere
    a.grad = torch.full((3, 2), float(my))
    b.grad = torch.arange(5.0) * (my + 1)
    if groups.local == 0:
        c.grad = torch.ones(2, dtype=torch.float64) * 4
    with recording() as st:
        all_reduce_mean_grads([a, b, c, frozen, d], groups.intra, "intra")
    L = len(intra)
    assert torch.allclose(a.grad, torch.full((3, 2), sum(intra) / L))
    assert torch.allclose(b.grad, torch.arange(5.0) * sum(r + 1 for r in intra) / L)
    assert c.grad is not None and torch.allclose(c.grad, torch.full((2,), 4.0 / L, dtype=torch.float64))
    assert d.grad is None and frozen.grad is None
    all_reduce_sum_grads([a], groups.intra, "intra")
    assert torch.allclose(a.grad, torch.full((3, 2), float(sum(intra))))
    return st.snapshot(by_op=True)


def full_exchange_stats(group, label: str, rows: int, width: int) -> dict:
    """Everyone sends `rows` float32 rows of `width` to everyone in `group`; returns the by-op stats."""
    g = dist.get_world_size(group)
    x = torch.ones(rows * g, width)
    with recording() as st:
        all_to_all_rows(x, [rows] * g, [rows] * g, group, label)
    return st.snapshot(by_op=True)


def worker_2x2(rank: int) -> dict:
    topo = Topology(2, 2)
    groups = HierarchicalGroups.build(topo)
    assert groups.peer_ranks == topo.peer_group(rank) and groups.intra_ranks == topo.intra_group(rank)
    assert tuple(dist.get_process_group_ranks(groups.peer)) == topo.peer_group(rank)
    assert tuple(dist.get_process_group_ranks(groups.intra)) == topo.intra_group(rank)
    out = {"rows": {}}
    for label, group, salt in (("world", None, 0), ("cross", groups.peer, 1), ("intra", groups.intra, 2)):
        out["rows"][label] = check_rows(group, label, salt)
        check_dtypes(group, label)
        check_jagged(group, label)
    check_all_gather(None, "world")
    out["grads"] = check_grads(groups)
    assert exchange_counts([[rank, 7]] * 4) == [[r, 7] for r in range(4)]
    out["full"] = {
        "cross": full_exchange_stats(groups.peer, "cross", 3, 4),
        "intra": full_exchange_stats(groups.intra, "intra", 2, 5),
        "world": full_exchange_stats(None, "world", 1, 6),
    }
    # bad arguments raise before any communication; a recv_counts mismatch raises on every rank
    x = torch.ones(4, 2)
    for send, recv in (([1, 1, 1], [1, 1, 1]), ([1, 1, 1, 0], [1, 1, 1, 1]), ([1, 1, 1, -1], [1, 1, 1, 1])):
        with pytest.raises(CollectiveError):
            all_to_all_rows(x, send, recv, None, "world")
    with pytest.raises(CollectiveError, match="differ" if rank == 0 else "another member"):
        all_to_all_rows(x, [1] * 4, [2, 0, 1, 1] if rank == 0 else [1] * 4, None, "world", check_counts=True)
    assert torch.equal(all_to_all_rows(x, [1] * 4, [1] * 4, None, "world", check_counts=True), x)
    # fingerprints: agree, then rank 2 differs
    check_fingerprint("plan-A")
    try:
        check_fingerprint("plan-B" if rank == 2 else "plan-A")
        out["fingerprint"] = None
    except RuntimeSetupError as exc:
        out["fingerprint"] = str(exc)
    # wrong topology for this world: world size 4 vs 1x2, LOCAL_WORLD_SIZE 2 vs 4x1 (both raise before any collective)
    out["mismatch"] = []
    for wrong in (Topology(1, 2), Topology(4, 1)):
        try:
            HierarchicalGroups.build(wrong)
            out["mismatch"].append(None)
        except RuntimeSetupError as exc:
            out["mismatch"].append(str(exc))
    return out


def worker_2x4(rank: int) -> dict:
    topo = Topology(2, 4)
    groups = HierarchicalGroups.build(topo)
    out = {"rows": {}}
    for label, group, salt in (("world", None, 0), ("cross", groups.peer, 1), ("intra", groups.intra, 2)):
        out["rows"][label] = check_rows(group, label, salt)
        check_jagged(group, label)
    check_grads(groups)
    out["full"] = {
        "cross": full_exchange_stats(groups.peer, "cross", 3, 4),
        "intra": full_exchange_stats(groups.intra, "intra", 2, 5),
        "world": full_exchange_stats(None, "world", 1, 6),
    }
    return out


# ----------------------------------------------------------------- parent-side checks


def expected_rows_stats(topo: Topology, rank: int, label: str, salt: int) -> dict:
    if label == "world":
        ranks = list(range(topo.world_size))
    elif label == "cross":
        ranks = list(topo.peer_group(rank))
    else:
        ranks = list(topo.intra_group(rank))
    g, me = len(ranks), ranks.index(rank)
    send = [cnt(me, j, salt, g) for j in range(g)]
    recv = [cnt(j, me, salt, g) for j in range(g)]
    others = [j for j in range(g) if j != me]
    return {
        "calls": 1,
        "bytes_sent": sum(send[j] for j in others) * ROW_BYTES_F64,
        "bytes_recv": sum(recv[j] for j in others) * ROW_BYTES_F64,
        "messages_sent": sum(1 for j in others if send[j]),
        "messages_recv": sum(1 for j in others if recv[j]),
    }


def assert_stats(topo: Topology, results: list) -> None:
    N, L, W = topo.num_hosts, topo.local_size, topo.world_size
    for rank, res in enumerate(results):
        for label, salt in (("world", 0), ("cross", 1), ("intra", 2)):
            exp = expected_rows_stats(topo, rank, label, salt)
            assert res["rows"][label]["fwd"] == {f"{label}/a2a_rows": exp}, (rank, label)
            # backward is the reverse exchange: sent and received swap
            bwd = dict(exp, bytes_sent=exp["bytes_recv"], bytes_recv=exp["bytes_sent"],
                       messages_sent=exp["messages_recv"], messages_recv=exp["messages_sent"])
            assert res["rows"][label]["bwd"] == {f"{label}/a2a_rows.bwd": bwd}, (rank, label)
        # everyone-to-everyone: messages = group size - 1; bytes = (g-1) * rows * width * 4
        for label, g, rows, width in (("cross", N, 3, 4), ("intra", L, 2, 5), ("world", W, 1, 6)):
            nbytes = (g - 1) * rows * width * 4
            assert res["full"][label] == {
                f"{label}/a2a_rows": {"calls": 1, "bytes_sent": nbytes, "bytes_recv": nbytes,
                                      "messages_sent": g - 1, "messages_recv": g - 1}
            }, (rank, label)


def test_collectives_2x2():
    results = launch_local(worker_2x2, "2x2", timeout_s=60)
    topo = Topology(2, 2)
    assert_stats(topo, results)
    assert results[0]["full"]["cross"]["cross/a2a_rows"]["messages_sent"] == 1  # N - 1
    # all_reduce model (reduce-scatter + all-gather), L = 2: f32 bucket a,b,d + 3 flags = 18 elements -> chunks
    # [9, 9]: send 9 + 9 elements = 72 B; f64 bucket c + 1 flag = 3 -> chunks [2, 1]: send 1 + 2 (or 2 + 1) = 24 B
    for res in results:
        assert res["grads"] == {"intra/grads": {"calls": 2, "bytes_sent": 96, "bytes_recv": 96,
                                                "messages_sent": 4, "messages_recv": 4}}
    assert results[0]["full"]["world"]["world/a2a_rows"]["messages_sent"] == 3  # W - 1
    for rank, res in enumerate(results):
        msg = res["fingerprint"]
        assert msg is not None and "ranks [2]" in msg and "'plan-B'" in msg and "'plan-A'" in msg, msg
        ws, lws = res["mismatch"]
        assert ws is not None and "world size is 4" in ws and "2 ranks" in ws, ws
        assert lws is not None and "LOCAL_WORLD_SIZE is 2" in lws and "1 rank per host" in lws, lws


def test_collectives_2x4():
    results = launch_local(worker_2x4, "2x4", timeout_s=80)
    topo = Topology(2, 4)
    assert_stats(topo, results)
    for res in results:
        assert res["full"]["cross"]["cross/a2a_rows"]["messages_sent"] == 1  # N - 1
        assert res["full"]["intra"]["intra/a2a_rows"]["messages_sent"] == 3  # L - 1
        assert res["full"]["world"]["world/a2a_rows"]["messages_sent"] == 7  # W - 1 = (N-1)L + (L-1)
