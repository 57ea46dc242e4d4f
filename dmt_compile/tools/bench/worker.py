"""One rank of one benchmarked strategy on our runtime (runs inside ``launch_local``).

Strategies: ``flat`` (``ShardedDmt.flat`` on the 1xW one-tower transform: table-wise hybrid
parallelism with one global AlltoAll), ``sptt`` (identity Tower Module) and ``sptt_tm`` (linear
Tower Module with compression ``c``). Every rank builds the model from the MODEL_SPEC (same seed),
transforms and shards it, slices its share of a fixed global batch and runs ``warmup + steps``
training steps (forward, BCE loss, backward, ``sync_gradients``, SGD step). Each step starts
after a barrier, so its wall time on a rank is that rank's step time; the report takes the
slowest rank per step. Exchanges are timed and counted by :class:`ExchangeTimer`; the runtime's
own :mod:`~dmt_compile.runtime.comm_stats` counters are returned too (the smoke test checks that
both agree).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["BenchOptions", "dmt_worker", "probe_links", "tower_info"]


@dataclass(frozen=True)
class BenchOptions:
    strategy: str  # flat | sptt | sptt_tm | torchrec_tw
    spec: str
    num_hosts: int
    local_size: int
    per_rank_batch: int
    steps: int
    warmup: int
    compression: float | None = None
    seed: int = 0
    lr: float = 0.01
    probe: bool = False

    @property
    def world(self) -> int:
        return self.num_hosts * self.local_size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_links(groups: Any, nbytes: int = 2 << 20, reps: int = 5) -> dict[str, float]:
    """Per-rank all-to-all bandwidth (bytes/s each rank sends to others) and small-message latency.

    ``intra``: the host's ranks over loopback; ``cross``: the peer group (one rank per host), all
    hosts' ranks at once, so a host's NIC is shared by its L ranks as in the real exchanges.
    """
    out: dict[str, float] = {}
    for label, group in (("intra", groups.intra), ("cross", groups.peer)):
        g = dist.get_world_size(group)
        if g < 2:
            continue
        rows = max(1, nbytes // 4 // g)
        x = torch.ones(rows * g)
        y = torch.empty_like(x)
        dist.all_to_all_single(y, x, group=group)  # connect
        times = []
        for _ in range(reps):
            dist.barrier(group=group)
            t0 = time.perf_counter()
            dist.all_to_all_single(y, x, group=group)
            times.append(time.perf_counter() - t0)
        out[f"{label}_bw"] = rows * 4 * (g - 1) / statistics.median(times)
        tiny, tiny_out = torch.ones(g), torch.empty(g)
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            dist.all_to_all_single(tiny_out, tiny, group=group)
            lat.append(time.perf_counter() - t0)
        out[f"{label}_latency"] = statistics.median(lat)
    return out


def tower_info(dmt: Any) -> list[dict[str, Any]]:
    """Per tower: host, features, ids per sample (one per lookup), widths in and out (elements)."""
    return [{"host": d.host, "features": len(d.features), "ids": len(d.lookups), "width_in": d.width_in,
             "width_out": d.width_out or d.width_in} for d in dmt.plan.details]


def _load(spec: str, batch: int, seed: int):
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.tools.verify import _factory_params

    if "batch_size" in _factory_params(spec):
        return load_model_spec(spec, batch_size=batch)
    return load_model_spec(spec)


def dmt_worker(rank: int, opts: BenchOptions) -> dict[str, Any]:
    import dmt_compile
    from dmt_compile.tools.bench.exchange_timer import ExchangeTimer
    from dmt_compile.runtime.batching import infer_batch_layout
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.lowering.sharded import ShardedDmt
    from dmt_compile.tools.verify import first_tensor
    from dmt_compile.topo import Topology

    topo = Topology(opts.num_hosts, opts.local_size)
    world = opts.world
    groups = HierarchicalGroups.build(topo)
    probe = probe_links(groups) if opts.probe else {}
    model, inputs = _load(opts.spec, world * opts.per_rank_batch, opts.seed)
    torch.manual_seed(opts.seed)
    if opts.strategy == "flat":
        dmt = dmt_compile.transform(model, Topology(1, world), inputs, num_towers=1)
    elif opts.strategy == "sptt":
        dmt = dmt_compile.transform(model, topo, inputs, tower_module="identity")
    elif opts.strategy == "sptt_tm":
        dmt = dmt_compile.transform(model, topo, inputs, tower_module="linear", compression=opts.compression)
    else:
        raise ValueError(f"unknown strategy {opts.strategy!r}")
    towers = tower_info(dmt)
    layout = infer_batch_layout(dmt)
    batch = layout.batch
    b = batch // world
    flat = dmt.input_spec.flatten(inputs, {})
    local = layout.slice(flat, rank * b, (rank + 1) * b)
    labels = (torch.rand(batch, 1, generator=torch.Generator().manual_seed(1234)) > 0.5).float()[rank * b:(rank + 1) * b]
    sharded = ShardedDmt(dmt, groups, strategy="flat" if opts.strategy == "flat" else "sptt")
    del dmt, model
    opt = torch.optim.SGD(sharded.parameters(), lr=opts.lr)
    timer = ExchangeTimer().install(opts.local_size)
    step_s: list[float] = []
    try:
        with recording() as stats:
            for step in range(opts.warmup + opts.steps):
                if step == opts.warmup:
                    stats.reset()
                    timer.discard()
                    step_s.clear()
                dist.barrier()
                t0 = time.perf_counter()
                out = sharded.gm(*local)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(first_tensor(out).reshape(-1, 1), labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                sharded.sync_gradients()
                opt.step()
                step_s.append(time.perf_counter() - t0)
                timer.new_step()
    finally:
        timer.uninstall()
    return {"rank": rank, "step_s": step_s, "timer": timer.records(), "stats": stats.snapshot(),
            "stats_by_op": stats.snapshot(by_op=True), "towers": towers, "batch_per_rank": b,
            "probe": probe, "param_bytes": sharded.parameter_bytes()}
