"""A multi-hot / sequence model with Zipf ids and the 2x2 worker of the id-dedup test (spawned by launch_local)."""
from __future__ import annotations

import torch
from torch import nn

ROWS, DIM, BAG, SEQ, PER_RANK = 300, 8, 12, 6, 16


class MultiHot(nn.Module):
    """Weighted jagged bags (sum), fixed-size bags [B, N] (mean), a sequence [B, L] and one-hot ids."""

    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(ROWS, DIM, mode="sum")
        self.fixed = nn.EmbeddingBag(ROWS, DIM, mode="mean")
        self.seq = nn.Embedding(ROWS, DIM)
        self.one = nn.Embedding(ROWS, DIM)
        self.top = nn.Sequential(nn.Linear(5 * DIM, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, dense, values, offsets, weights, fixed, seq, one):
        s = self.seq(seq)  # [B, L, D]: a sequence feature
        parts = [self.bag(values, offsets, per_sample_weights=weights), self.fixed(fixed), s.mean(1), s[:, 0] * dense,
                 self.one(one)]
        return self.top(torch.cat(parts, dim=1))


def make(batch: int, zipf: float, seed: int = 0):
    from benchmarks.emulated.id_workload import multi_hot, zipf_ids

    torch.manual_seed(seed)
    model = MultiHot()
    g = torch.Generator().manual_seed(seed + 1)
    values, offsets = multi_hot(batch, BAG, ROWS, zipf, g, table_seed=0, ragged=True)
    weights = torch.rand(values.numel(), generator=g)
    inputs = (torch.rand(batch, DIM, generator=g), values, offsets, weights,
              zipf_ids((batch, BAG), ROWS, zipf, g, 1), zipf_ids((batch, SEQ), ROWS, zipf, g, 2),
              zipf_ids((batch,), ROWS, zipf, g, 3))
    return model, inputs


def _run(dedup: bool, zipf: float, tower_module: str):
    import dmt_compile
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.training.batching import infer_batch_layout
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.groups import HierarchicalGroups

    rank = torch.distributed.get_rank()
    model, inputs = make(4 * PER_RANK, zipf)
    dmt = dmt_compile.transform(model, "2x2", inputs, num_towers=2, tower_module=tower_module,
                                compression=None if tower_module == "identity" else 2)
    layout = infer_batch_layout(dmt)
    local = layout.slice(dmt.input_spec.flatten(inputs, {}), rank * PER_RANK, (rank + 1) * PER_RANK)
    sharded = ShardedDmt(dmt, HierarchicalGroups.build("2x2"), dedup_ids=dedup)
    with recording() as stats:
        out = sharded.gm(*local)
        out.float().pow(2).sum().backward()
    grads = {n: p.grad.clone() for n, p in sharded.named_parameters() if p.grad is not None}
    return out.detach(), grads, stats.snapshot(by_op=True), dmt, local


def analytic_distinct_bytes(dmt, local) -> int:
    """8 bytes per distinct id of each (table, rank) whose tower lives on another host."""
    rank = torch.distributed.get_rank()
    my_host = rank // 2
    names = [leaf.feature for leaf in dmt.input_spec.leaves]
    by_feature = dict(zip(names, local))
    total = 0
    for detail in dmt.plan.details:
        if detail.host == my_host:
            continue
        for feature in detail.features:  # features are named by their id inputs here
            total += 8 * int(torch.unique(by_feature[feature]).numel())
    return total


def worker(rank: int, zipf: float, tower_module: str) -> dict:
    out_a, grads_a, stats_a, dmt, local = _run(False, zipf, tower_module)
    out_b, grads_b, stats_b, _, _ = _run(True, zipf, tower_module)
    same = torch.equal(out_a, out_b) and grads_a.keys() == grads_b.keys() and \
        all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)
    ids_bytes = lambda s: sum(v["bytes_sent"] for k, v in s.items() if k.startswith("cross/ids."))  # noqa: E731
    return {"same": same, "features": [leaf.feature for leaf in dmt.input_spec.leaves],
            "towers": [list(d.features) for d in dmt.plan.details],
            "plain_bytes": ids_bytes(stats_a), "dedup_bytes": ids_bytes(stats_b),
            "unique_bytes": stats_b.get("cross/ids.unique", {}).get("bytes_sent", 0),
            "plain_values": stats_a.get("cross/ids.values", {}).get("bytes_sent", 0),
            "analytic": analytic_distinct_bytes(dmt, local), "ops": sorted(stats_b)}


def mixed_dedup(rank: int) -> None:
    """Rank 1 asks for dedup_ids, the others do not: every rank must refuse (the wire formats differ)."""
    import dmt_compile
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.runtime.groups import HierarchicalGroups

    model, inputs = make(4 * PER_RANK, 1.1)
    ShardedDmt(dmt_compile.transform(model, "2x2", inputs), HierarchicalGroups.build("2x2"), dedup_ids=rank == 1)
