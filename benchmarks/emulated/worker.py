"""One rank of the benchmark: every strategy in one process, steps interleaved (runs inside ``launch_local``).

Strategies: ``flat`` (``ShardedDmt.flat`` on the 1xW one-tower transform: table-wise hybrid
parallelism with one global AlltoAll), ``torchrec_tw`` (TorchRec DMP, table-wise, see
:mod:`.torchrec_worker`), ``sptt`` (identity Tower Module) and ``sptt_tm`` (a compressing Tower
Module, ``linear`` by default, with compression ``c`` and the chosen ``feed``). Every rank builds every strategy from the
MODEL_SPEC (same seed), slices its share of one fixed global batch, then runs rounds: in round
``k`` each strategy does one training step (forward, BCE loss, backward, gradient sync, SGD), in
an order rotated by ``k``, so slow drifts of the machine (other jobs, thermal) hit every
strategy alike. Each step starts after a barrier; the report takes the slowest rank per step.

Per step and rank: wall time, CPU time of the process (all its threads, gloo's included, for
the CPU-validity check), and the exchanges (:class:`ExchangeTimer`). Gradient sync of our
strategies: ``dense_sync="hierarchical"`` all-reduces data-parallel gradients with
:func:`~dmt_compile.runtime.hierarchical_all_reduce.hierarchical_all_reduce_`, ``"flat"`` with
``ShardedDmt.sync_gradients`` (one all-reduce over the world).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["BenchOptions", "bench_worker", "probe_links", "run_key"]


@dataclass(frozen=True)
class BenchOptions:
    runs: tuple  # ((strategy, compression or None, wire dtype), ...)
    spec: str
    num_hosts: int
    local_size: int
    per_rank_batch: int
    steps: int
    warmup: int
    feed: str = "auto"
    tower_module: str = "linear"  # the compressing Tower Module of sptt_tm
    dense_sync: str = "hierarchical"  # hierarchical | hierarchical_async (during backward) | flat
    interleave: bool = True
    pipeline: bool = False  # prefetch the next step's ids while this one computes (IdsPipeline)
    pipeline_chunks: int = 1  # SPTT: each step as k overlapped micro-batches (MicroBatchPipeline)
    dedup_ids: bool = False  # SPTT: each (host, table)'s distinct ids cross hosts once (runtime/id_dedup.py)
    seed: int = 0
    lr: float = 0.01
    probe: bool = True
    auto: tuple = ()  # transform keywords of strategy="auto"'s choice, as sorted items (run "auto", .auto_row)

    @property
    def world(self) -> int:
        return self.num_hosts * self.local_size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_key(strategy: str, compression: float | None, wire_dtype: str | None = None) -> str:
    """``flat``, ``sptt_tm@4``, ``flat+bf16``: strategy, compression, wire dtype other than fp32."""
    wire = "" if wire_dtype in (None, "fp32", "native") else f"+{wire_dtype}"
    return strategy + ("" if compression is None else f"@{compression:g}") + wire


def probe_links(groups: Any, nbytes: int = 2 << 20, reps: int = 5) -> dict[str, float]:
    """Per-rank all-to-all bandwidth (bytes/s each rank sends to others) and small-message latency.

    ``intra``: the host's ranks over loopback; ``cross``: the peer group (one rank per host), all
    hosts' ranks at once, so a host's NIC is shared by its L ranks as in the real exchanges.
    """
    from dmt_compile.runtime.duplex import exchange

    out: dict[str, float] = {}
    for label, group in (("intra", groups.intra), ("cross", groups.peer)):
        g = dist.get_world_size(group)
        if g < 2:
            continue
        rows = max(1, nbytes // 4 // g)
        x = torch.ones(rows * g)
        exchange(x, [rows] * g, [rows] * g, group, "probe", "bw")  # connect
        times = []
        for _ in range(reps):
            dist.barrier(group=group)
            t0 = time.perf_counter()
            exchange(x, [rows] * g, [rows] * g, group, "probe", "bw")
            times.append(time.perf_counter() - t0)
        out[f"{label}_bw"] = rows * 4 * (g - 1) / statistics.median(times)
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            exchange(torch.ones(g), [1] * g, [1] * g, group, "probe", "lat")
            lat.append(time.perf_counter() - t0)
        out[f"{label}_latency"] = statistics.median(lat)
    return out


def cpu_share(seconds: float = 0.4) -> float:
    """Fraction of one core this rank gets while every rank computes (all start after a barrier):
    ~cores / ranks on an idle box, less when other jobs share it; the cost model's 1 / k. Sampled
    before, during (every round) and after the run."""
    a = torch.randn(128, 128)
    dist.barrier()
    w0, c0 = time.perf_counter(), time.thread_time()
    while time.perf_counter() - w0 < seconds:
        a = torch.tanh(a @ a)
    return (time.thread_time() - c0) / (time.perf_counter() - w0)


def lookups_per_host(owners: dict, opts: BenchOptions) -> list[int]:
    """Flat baseline: table lookups whose owner (a world rank) sits on each host (row-wise ones apart)."""
    out = [0] * opts.num_hosts
    for per_lookup in owners.values():
        for o in per_lookup:
            if o >= 0:
                out[o // opts.local_size] += 1
    return out


def _load(spec: str, batch: int):
    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.tools.verify import _factory_params

    if "batch_size" in _factory_params(spec):
        return load_model_spec(spec, batch_size=batch)
    return load_model_spec(spec)


def _transform(strategy: str, compression: float | None, opts: BenchOptions, model: Any, inputs: Any,
               wire_dtype: str | None = None) -> Any:
    import dmt_compile
    from dmt_compile.topo import Topology

    wire = None if wire_dtype in (None, "native") else wire_dtype
    if strategy == "auto":  # the candidate strategy="auto" chose (.auto_row): its own transform keywords
        kwargs = dict(opts.auto)
        shape = kwargs.pop("topology_shape", None) or (opts.num_hosts, opts.local_size)
        return dmt_compile.transform(model, Topology(*shape), inputs, wire_dtype=wire, **kwargs)
    if strategy == "flat":
        return dmt_compile.transform(model, Topology(1, opts.world), inputs, num_towers=1, wire_dtype=wire)
    if strategy == "sptt":
        return dmt_compile.transform(model, Topology(opts.num_hosts, opts.local_size), inputs, tower_module="identity",
                                     wire_dtype=wire)
    return dmt_compile.transform(model, Topology(opts.num_hosts, opts.local_size), inputs,
                                 tower_module=opts.tower_module, compression=compression, feed=opts.feed,
                                 wire_dtype=wire)


class DmtRun:
    """One of our strategies on this rank: the sharded model, its batch share and optimizer."""

    def __init__(self, strategy: str, compression: float | None, opts: BenchOptions, groups: Any, rank: int,
                 wire_dtype: str | None = None):
        from dmt_compile.training.sharded import ShardedDmt
        from dmt_compile.training.batching import infer_batch_layout
        from benchmarks.emulated.descriptor import describe

        model, inputs = _load(opts.spec, opts.world * opts.per_rank_batch)
        torch.manual_seed(opts.seed)
        dmt = _transform(strategy, compression, opts, model, inputs, wire_dtype)
        if strategy == "auto":  # flat or SPTT, as the chosen candidate is
            compression = dict(opts.auto).get("compression")
            strategy = "flat" if dict(opts.auto).get("topology_shape") else "sptt"
        from benchmarks.emulated.descriptor import tower_info

        self.towers = tower_info(dmt)
        self.descriptor = describe(dmt, compression, wire_dtype)
        layout = infer_batch_layout(dmt)
        b = layout.batch // opts.world
        self.batch_per_rank = b
        self.local = layout.slice(dmt.input_spec.flatten(inputs, {}), rank * b, (rank + 1) * b)
        gen = torch.Generator().manual_seed(1234)
        self.labels = (torch.rand(layout.batch, 1, generator=gen) > 0.5).float()[rank * b:(rank + 1) * b]
        self.sharded = ShardedDmt(dmt, groups, strategy="flat" if strategy == "flat" else "sptt",
                                  dedup_ids=opts.dedup_ids and strategy != "flat")
        if strategy == "flat":  # host-aware: whole tables dealt so every host's NIC carries an equal share
            self.descriptor["placement"] = {"tables_per_host": lookups_per_host(self.sharded.owners, opts),
                                            "host_aware": True}
        self.groups, self.dense_sync, self.strategy = groups, opts.dense_sync, strategy
        self.opt = torch.optim.SGD(self.sharded.parameters(), lr=opts.lr)
        self.pipe = None
        if opts.pipeline and strategy != "flat":
            from dmt_compile.training.pipeline import IdsPipeline

            self.pipe = IdsPipeline(self.sharded)  # every step trains on the same batch: it is also the next one
        self.reducer = None
        if opts.dense_sync == "hierarchical_async":  # distribute()'s hooks: all three stages during backward
            from dmt_compile.training.distributed import build_reducer

            self.reducer = build_reducer(self.sharded, "hierarchical_async")
        self.chunked = None
        if opts.pipeline_chunks > 1 and strategy != "flat":
            from dmt_compile.training.micro_batches import MicroBatchPipeline

            self.chunked = MicroBatchPipeline(self.sharded, opts.pipeline_chunks, layout)

    def step(self) -> None:
        from dmt_compile.tools.verify import first_tensor

        if self.chunked is not None:
            out = self.chunked.forward_flat(self.local)
        else:
            out = self.pipe.forward_flat(self.local, self.local) if self.pipe else self.sharded.gm(*self.local)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(first_tensor(out).reshape(-1, 1), self.labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sync()
        self.opt.step()

    @torch.no_grad()
    def sync(self) -> None:
        """``ShardedDmt.sync_gradients``, with the dense all-reduce hierarchical when asked."""
        if self.reducer is not None:
            return  # synchronised by the reducer's hooks during backward
        if self.dense_sync == "flat":
            self.sharded.sync_gradients()
            return
        from dmt_compile.runtime.collectives import all_reduce_grads
        from dmt_compile.runtime.hierarchical_all_reduce import hierarchical_all_reduce_

        s, g = self.sharded, self.groups
        world = g.topology.world_size
        dense = [p for p in s.dense_params if p.requires_grad]
        if dense:
            bucket = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in dense])
            hierarchical_all_reduce_(bucket, g.intra, g.peer, average=True, op="dense_grads")
            for p, chunk in zip(dense, torch.split(bucket, [p.numel() for p in dense])):
                p.grad = chunk.view_as(p)
        if s.tower_params and self.strategy == "flat":  # the one "tower" spans the world
            all_reduce_grads(s.tower_params, g.world, "world", average=True, op="tm_grads")
        elif s.tower_params:  # host t saw every sample of its tower: sum over the host, / W
            all_reduce_grads(s.tower_params, g.intra, "intra", average=False, op="tm_grads")
            for p in s.tower_params:
                if p.grad is not None:
                    p.grad.div_(world)
        for p in s.embedding_params:
            if p.grad is not None:
                p.grad.div_(world)


def _build(key: tuple, opts: BenchOptions, groups: Any, rank: int) -> Any:
    strategy, c, wire = key
    if strategy.startswith("torchrec_"):
        from benchmarks.emulated.torchrec_worker import TorchRecRun

        return TorchRecRun(opts, rank, strategy, wire, compression=c)
    return DmtRun(strategy, c, opts, groups, rank, wire)


def schedule(runs: tuple, rounds: int, interleave: bool) -> list[tuple[int, tuple]]:
    """(round, run) in execution order: rotated per round when interleaved, else run by run."""
    if not interleave:
        return [(k, run) for run in runs for k in range(rounds)]
    n = len(runs)
    return [(k, runs[(k + i) % n]) for k in range(rounds) for i in range(n)]


def bench_worker(rank: int, opts: BenchOptions) -> dict[str, Any]:
    """Build every run, execute the schedule, return per-run step/CPU/exchange records of this rank."""
    from dmt_compile.runtime.comm_stats import CommStats, recording
    from dmt_compile.runtime.overlap_stats import hidden_fraction, reset_overlap
    from dmt_compile.runtime.groups import HierarchicalGroups
    from benchmarks.emulated.exchange_timer import ExchangeTimer
    from dmt_compile.topo import Topology

    groups = HierarchicalGroups.build(Topology(opts.num_hosts, opts.local_size))
    probe = probe_links(groups) if opts.probe else {}
    share = [cpu_share()]
    runs, errors = {}, {}
    for k in opts.runs:  # a baseline that cannot be built fails alike on every rank: record it, run the rest
        try:
            runs[tuple(k)] = _build(tuple(k), opts, groups, rank)
        except Exception as exc:  # noqa: BLE001 - the error text goes into the report's `skipped`
            errors[run_key(*k)] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    rec = {k: {"step_s": [], "cpu_s": [], "t0": [], "hidden": [], "timer": ExchangeTimer(opts.local_size),
               "stats": CommStats(rank)}
           for k in runs}
    last_round = -1
    for rnd, key in schedule(tuple(runs), opts.warmup + opts.steps, opts.interleave):
        if rnd != last_round and opts.interleave:  # the box's load drifts: sample the CPU share every round
            share.append(cpu_share(0.2))
            last_round = rnd
        r, run = rec[key], runs[key]
        if rnd == opts.warmup and r["step_s"] and len(r["step_s"]) == opts.warmup:
            r["timer"].discard()
            r["stats"].reset()
            r["step_s"].clear(), r["cpu_s"].clear(), r["t0"].clear(), r["hidden"].clear()
        dist.barrier()
        reset_overlap()
        c0, t0 = time.process_time(), time.perf_counter()
        with recording(r["stats"]), r["timer"].active(patch_all_to_all=key[0].startswith("torchrec_")):
            run.step()
        r["step_s"].append(time.perf_counter() - t0)
        r["cpu_s"].append(time.process_time() - c0)
        r["hidden"].append(hidden_fraction())  # share of this step's exchange time spent computing
        r["t0"].append(t0)
        r["timer"].new_step()
    share.append(cpu_share())
    for run in runs.values():
        if getattr(run, "pipe", None) is not None:
            run.pipe.reset()  # the last prefetched exchange has no step: complete it on every rank
    return {"rank": rank, "probe": probe, "cpu_share": share, "errors": errors, "runs": {
        run_key(*k): {"step_s": r["step_s"], "cpu_s": r["cpu_s"], "t0": r["t0"], "hidden": r["hidden"],
                      "timer": r["timer"].records(),
                      "stats": r["stats"].snapshot(), "stats_by_op": r["stats"].snapshot(by_op=True),
                      "towers": getattr(runs[k], "towers", []), "batch_per_rank": runs[k].batch_per_rank,
                      "descriptor": getattr(runs[k], "descriptor", None)}
        for k, r in rec.items()}}
