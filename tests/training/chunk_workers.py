"""Rank workers of the pipeline_chunks tests (top level, so launch_local can pickle them)."""
from __future__ import annotations

import torch

from workers import _batch


def _build(spec: str, topology: str, tm: str, compression, strategy: str, chunks: int, **kw):
    import dmt_compile
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.topo import Topology, as_topology

    topo = as_topology(topology)
    model, inputs = load_model_spec(spec, batch_size=topo.world_size * 8)
    target, towers = (Topology(1, topo.world_size), 1) if strategy == "flat" else (topo, None)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, target, inputs, tower_module=tm, num_towers=towers, compression=compression)
    return dmt_compile.distribute(dmt, topology, strategy=strategy, pipeline_chunks=chunks, **kw)


def _step(model, batch, labels, rank: int, b: int, opt):
    from dmt_compile.tools.verify import first_tensor

    out = first_tensor(model(*model.local_batch(*batch)))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out.reshape(-1, 1).float(),
                                                               labels[rank * b:(rank + 1) * b])
    opt.zero_grad()
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.sharded.named_parameters() if p.grad is not None}
    opt.step()
    return out.detach(), float(loss), grads


def chunked_matches_whole(rank: int, spec: str, topology: str, chunks: int, tm: str = "linear", compression=None,
                          strategy: str = "sptt", steps: int = 2, per_rank: int = 8, **kw) -> dict:
    """Train one model with pipeline_chunks=1 and its twin with `chunks`: largest differences, bytes, events."""
    from dmt_compile.runtime import comm_stats
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.overlap_stats import overlap_snapshot, reset_overlap

    events: list = []
    comm_stats.add_observer(events.append)
    world = torch.distributed.get_world_size()
    runs = {}
    for k in (1, chunks):
        model = _build(spec, topology, tm, compression, strategy, k, **kw)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        events.clear()
        reset_overlap()
        with recording() as stats:
            steps_out = [_step(model, *_batch(spec, world, per_rank, s), rank, per_rank, opt) for s in range(steps)]
        params = {n: p.detach().clone() for n, p in model.sharded.named_parameters()}
        runs[k] = (steps_out, params, stats.snapshot(by_op=True), list(events), overlap_snapshot())
    (whole, p1, s1, _, _), (cut, pk, sk, ev, ov) = runs[1], runs[chunks]
    diff = {"out": 0.0, "loss": 0.0, "grad": 0.0}
    for (o1, l1, g1), (ok, lk, gk) in zip(whole, cut):
        diff["out"] = max(diff["out"], float((o1 - ok).abs().max()))
        diff["loss"] = max(diff["loss"], abs(l1 - lk))
        assert g1.keys() == gk.keys(), (sorted(g1), sorted(gk))
        diff["grad"] = max([diff["grad"]] + [float((g1[n] - gk[n]).abs().max()) for n in g1])
    diff["param"] = max(float((p1[n] - pk[n]).abs().max()) for n in p1)
    outputs = [(e.start, e.end) for e in ev if e.op == "outputs"]
    return {"diff": diff, "grads": len(whole[0][2]), "stats_1": s1, "stats_k": sk, "outputs": outputs, "overlap": ov}


def mismatched_chunks(rank: int, spec: str) -> str:
    """Rank 1 asks for 2 chunks, the others for 1: every rank must refuse."""
    from dmt_compile.errors import RuntimeSetupError

    try:
        _build(spec, "2x2", "identity", None, "sptt", 2 if rank == 1 else 1)
    except RuntimeSetupError as exc:
        return str(exc)
    return "accepted"


def chained_matches_sync(rank: int, spec: str, steps: int = 2, per_rank: int = 8) -> dict:
    """dense_sync="hierarchical" vs "hierarchical_async" (small buckets): gradients and parameters, bitwise."""
    import threading

    from dmt_compile.runtime import comm_stats
    from dmt_compile.runtime.comm_stats import recording

    threads: list[str] = []
    comm_stats.add_observer(lambda e: threads.append(threading.current_thread().name) if e.op.endswith(".ar") else None)
    world = torch.distributed.get_world_size()
    runs = {}
    for mode in ("hierarchical", "hierarchical_async"):
        model = _build(spec, "2x2", "linear", 2, "sptt", 1, dense_sync=mode, bucket_cap_mb=0.004)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        threads.clear()
        with recording() as stats:
            grads = [_step(model, *_batch(spec, world, per_rank, s), rank, per_rank, opt)[2] for s in range(steps)]
        params = {n: p.detach().clone() for n, p in model.sharded.named_parameters()}
        runs[mode] = (grads, params, stats.snapshot(by_op=True), sorted(set(threads)),
                     sum(1 for b in model.reducer.buckets if b.spec.hierarchy is not None))
    (g1, p1, s1, _, buckets), (g2, p2, s2, t2, _) = runs["hierarchical"], runs["hierarchical_async"]
    same = all(a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a) for a, b in zip(g1, g2))
    same = same and all(torch.equal(p1[n], p2[n]) for n in p1)
    return {"same": same, "stats_sync": s1, "stats_async": s2, "threads": t2, "buckets": buckets}


def chunk_cases(rank: int, cases: list[dict]) -> list:
    kinds = {"mismatch": mismatched_chunks, "chain": chained_matches_sync}
    return [kinds[case["kind"]](rank, case["spec"]) if "kind" in case else chunked_matches_whole(rank, **case)
            for case in cases]
