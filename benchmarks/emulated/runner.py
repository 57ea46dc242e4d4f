"""Run every strategy on one emulated network, interleaved, and collect the report (see :mod:`.analysis`).

:func:`run_benchmark` refuses a loaded box (:func:`.stats.check_load`; ``force`` overrides and the
report says ``loaded_box``), builds the namespaces once (:class:`~benchmarks.emulated.netns.Emulation`)
and always tears them down (``finally``, SIGINT/SIGTERM). With a target share (``wire_share``) it
first runs flat alone twice to find the NIC rate at which flat's MEASURED exchange share is the
target (:func:`.bound.rate_for_measured_share`). Then every run is timed interleaved at the fast
calibration rate (its non-wire time ``C_s``, for the honest bound of :mod:`.bound`), and finally
one ``launch_local`` job runs all strategies at the chosen rate, in one process per rank,
interleaved rounds (:mod:`.worker`), ranks pinned to cores (consecutive ranks share a core),
while a sampler traces host 0's NIC every 10 ms (:mod:`.nic`). Speedups are per-round paired
ratios with bootstrap CIs (:mod:`.headline`). Load average is recorded before and after.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from benchmarks.emulated.analysis import summarize
from benchmarks.emulated.bound import (CALIBRATION_TOLERANCE, add_honest_bounds, cpu_floor, next_calibration_rate,
                                       non_wire_time, non_wire_times, wire_from_nic)
from benchmarks.emulated.headline import add_claims
from benchmarks.emulated.model import MODEL_SPEC
from benchmarks.emulated.netns import (HOST_IFNAME, Emulation, EmulationError, LinkSpec, RankNetns,
                                           check_netns_permitted, host_ns, list_leftovers, rank_cores)
from benchmarks.emulated.stats import check_load, loadavg
from benchmarks.emulated.torchrec_worker import torchrec_available
from benchmarks.emulated.worker import BenchOptions, bench_worker, run_key

__all__ = ["BenchConfig", "run_benchmark", "strategy_list", "loadavg", "STRATEGIES"]

STRATEGIES = ("flat", "torchrec_tw", "torchrec_rw", "torchrec_twrw", "torchrec_towers", "sptt", "sptt_tm")
DEFAULT_STRATEGIES = ("flat", "torchrec_tw", "torchrec_rw", "torchrec_twrw", "sptt", "sptt_tm")


@dataclass(frozen=True)
class BenchConfig:
    num_hosts: int = 2
    local_size: int = 2
    inter_bw_bits: float | None = None  # None: 1 Gbit/s, or chosen from wire_share
    wire_share: float | None = None  # target flat MEASURED exchange share in (0, 1)
    inter_delay_s: float = 0.0
    spec: str = MODEL_SPEC
    per_rank_batch: int = 1024
    steps: int = 30  # paired interleaved rounds (>= 30 for the confidence intervals)
    warmup: int = 2
    compressions: tuple[float, ...] = (4.0, 16.0)
    torchrec: bool = True
    timeout_s: float = 900.0
    strategies: tuple[str, ...] = field(default=DEFAULT_STRATEGIES)
    wire_dtypes: tuple[str, ...] = ("fp32",)  # every strategy runs once per wire dtype
    feed: str = "auto"
    tower_module: str = "linear"
    dense_sync: str = "hierarchical"
    pin: bool = True
    interleave: bool = True
    nic_trace: bool = True
    all_to_all: str = "auto"  # auto (full-duplex p2p on gloo) | collective (all_to_all_single)
    pipeline: bool = False  # prefetch the next step's ids (IdsPipeline)
    pipeline_chunks: int = 1  # SPTT steps as k overlapped micro-batches (MicroBatchPipeline)
    dedup_ids: bool = False  # SPTT: distinct ids per (host, table) cross hosts once
    calibration_bw_bits: float = 10e9  # "unthrottled": the rate of the calibration and C_s passes
    calibration_steps: int = 6
    calibration_passes: int = 5  # the first at calibration_bw_bits, then model / secant corrections
    bound: bool = True  # time every run unthrottled first (C_s) for the honest bound
    force: bool = False  # run although the box is loaded (the report says so)
    auto: bool = False  # also time strategy="auto"'s choice (:mod:`.auto_row`); "auto" in strategies sets it too
    cost_params: str | None = None  # fitted parameter file for the auto choice (None: the shipped set)

    @property
    def with_auto(self) -> bool:
        return self.auto or "auto" in self.strategies


def _torchrec_skip(s: str, cfg: BenchConfig) -> str | None:
    why = torchrec_available()
    if not cfg.torchrec:
        return "disabled (--no-torchrec)"
    if why is not None:
        return f"torchrec is not importable: {why}"
    if cfg.spec != MODEL_SPEC:
        return f"the TorchRec baselines are built for the default model {MODEL_SPEC} only"
    return None


def strategy_list(cfg: BenchConfig) -> tuple[list[tuple[str, float | None, str]], dict[str, str]]:
    """``[(strategy, compression, wire dtype)]`` to run, and ``{strategy: why skipped}``."""
    runs: list[tuple[str, float | None, str]] = []
    skipped: dict[str, str] = {}
    for s in cfg.strategies:
        if s == "auto":  # chosen once the NIC rate is known (run_benchmark, .auto_row)
            continue
        if s not in STRATEGIES:
            raise EmulationError(f"unknown strategy {s!r}", "use " + ", ".join(STRATEGIES) + " (and auto)")
        if s.startswith("torchrec_") and _torchrec_skip(s, cfg):
            skipped[s] = _torchrec_skip(s, cfg)
            continue
        for w in cfg.wire_dtypes:
            if s in ("sptt_tm", "torchrec_towers"):  # TorchRec's towers carry the sptt_tm Tower Module
                runs.extend((s, float(c), w) for c in cfg.compressions)
            else:
                runs.append((s, None, w))
    return runs, skipped


def _check(cfg: BenchConfig) -> None:
    from dmt_compile.ir.feed import FEEDS
    from dmt_compile.runtime.wire_codec import check_wire_dtype
    from dmt_compile.tower_modules import TOWER_MODULES

    if cfg.feed not in FEEDS:
        raise EmulationError(f"--feed {cfg.feed!r} is not available in this build (feeds: {', '.join(FEEDS)})",
                             "choose one of those feeds; 'hierarchical' needs the hierarchical Tower-Module feed")
    if cfg.tower_module not in TOWER_MODULES or cfg.tower_module == "identity":
        raise EmulationError(f"--tower-module {cfg.tower_module!r} is not a compressing Tower Module",
                             "choose one of " + ", ".join(sorted(set(TOWER_MODULES) - {"identity"})))
    if cfg.wire_share is not None and not 0.0 < cfg.wire_share < 1.0:
        raise EmulationError(f"--wire-share {cfg.wire_share} is not in (0, 1)", "give e.g. 0.84 or 0.275")
    if cfg.dense_sync not in ("hierarchical", "hierarchical_async", "flat"):
        raise EmulationError(f"unknown dense sync {cfg.dense_sync!r}", "use hierarchical, hierarchical_async or flat")
    if cfg.all_to_all not in ("auto", "p2p", "collective"):
        raise EmulationError(f"unknown all-to-all mode {cfg.all_to_all!r}", "use auto, p2p or collective")
    for w in cfg.wire_dtypes:
        check_wire_dtype(w)


def _workload() -> dict[str, Any]:
    """The bench model's id workload (`--ids-per-feature`, `--zipf` reach the model factory by environment)."""
    return {"ids_per_feature": int(os.environ.get("DMT_BENCH_IDS_PER_FEATURE", "1")),
            "zipf": float(os.environ.get("DMT_BENCH_ZIPF", "0"))}


def _launch(cfg: BenchConfig, opts: BenchOptions, cores: list[int] | None) -> list[dict[str, Any]]:
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import Topology

    topo = Topology(cfg.num_hosts, cfg.local_size)
    pinned = rank_cores(topo.world_size, cores) if cores else None
    return launch_local(bench_worker, topo, args=(opts,), timeout_s=cfg.timeout_s,
                        child_setup=RankNetns(cfg.local_size, pinned), env={"DMT_ALL_TO_ALL": cfg.all_to_all})


def _per_run(results: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [dict(r["runs"][key], rank=r["rank"]) for r in results]


def _rows_at(cfg: BenchConfig, opts: BenchOptions, cores, emu: Emulation, rate: float,
             runs: tuple) -> dict[str, dict[str, Any]]:
    """Run `runs` (interleaved) at `rate` for the calibration steps; {run key: summary row}."""
    emu.set_link(LinkSpec(rate, cfg.inter_delay_s))
    short = replace(opts, runs=runs, steps=cfg.calibration_steps, warmup=1, probe=False)
    results = _launch(cfg, short, cores)
    out = {}
    for strategy, c, w in runs:
        key = run_key(strategy, c, w)
        if key in results[0]["runs"]:
            out[key] = summarize(strategy, c, _per_run(results, key), num_hosts=cfg.num_hosts,
                                 local_size=cfg.local_size, rate_bytes=rate / 8, delay_s=cfg.inter_delay_s,
                                 towers=[], probe={})
    return out


def _calibrate(cfg: BenchConfig, opts: BenchOptions, cores, emu: Emulation, log) -> dict[str, Any]:
    """Passes of flat alone: at the fast calibration rate, then at the rate that pass gives for the
    target MEASURED exchange share, then secant corrections (:func:`.bound.next_calibration_rate`:
    the non-exchange time moves with the rate) until a pass lands within the tolerance or
    ``calibration_passes`` ran; the rate to time at is that pass's, else the measured pass closest to
    the target (an unreachable share is not chased to ever slower links)."""
    rate, passes = cfg.calibration_bw_bits, []
    for _ in range(cfg.calibration_passes):
        row = _rows_at(cfg, opts, cores, emu, rate, (("flat", None, "fp32"),))["flat"]
        share = row["exchange_time_median_s"] / row["step_time_median_s"]
        passes.append({"rate_bits": rate, "flat_step_s": row["step_time_median_s"],
                       "flat_exchange_s": row["exchange_time_median_s"], "nic_bytes": row["nic_bytes_busiest_direction"],
                       "measured_exchange_share": share})
        new = next_calibration_rate(passes, cfg.wire_share)
        passes[-1]["next_rate_bits"] = new
        log(f"calibration: flat {row['step_time_median_s'] * 1e3:.1f} ms at {rate / 1e6:.1f} Mbit/s "
            f"(measured exchange share {share:.3f}) -> "
            + (f"{new / 1e6:.1f} Mbit/s for {cfg.wire_share:g}" if new else f"within {CALIBRATION_TOLERANCE:g}: kept"))
        if new is None:
            break
        rate = new
    converged = passes[-1]["next_rate_bits"] is None
    if not converged:  # time at the measured pass closest to the target, never at an unmeasured guess
        rate = min(passes, key=lambda p: abs(p["measured_exchange_share"] - cfg.wire_share))["rate_bits"]
    return {"passes": passes, "rate_bits": rate, "converged": converged}


def _cores(cfg: BenchConfig) -> list[int] | None:
    if not cfg.pin or not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def _row(cfg: BenchConfig, strategy: str, c: float | None, w: str, results: list, trace: list, rate: float,
         probe: dict, ncores: int) -> dict[str, Any]:
    """One result row: the measurements (:func:`.analysis.summarize`) and the model descriptor."""
    key = run_key(strategy, c, w)
    per_rank = _per_run(results, key)
    row = summarize(strategy, c, per_rank, num_hosts=cfg.num_hosts, local_size=cfg.local_size,
                    rate_bytes=rate / 8, delay_s=cfg.inter_delay_s, towers=per_rank[0]["towers"], probe=probe,
                    cores=ncores)
    d = per_rank[0].get("descriptor") or {}
    row.update(run=key, wire_dtype=w, descriptor=d, compression_requested=d.get("compression_requested", c),
               compression_effective=d.get("compression_effective"), feed=d.get("feed"),
               compression_label=d.get("compression_label"))
    hidden = [h for r in per_rank for h in r.get("hidden", [])]  # runtime/overlap_stats, per rank and step
    row["exchange_hidden"] = statistics.median(hidden) if hidden else None
    if strategy in ("torchrec_rw", "torchrec_twrw"):  # their pooled embeddings come back by reduce-scatter
        row["wire_counted"] = False
        row["wire_note"] = ("TorchRec's reduce-scatter / all-gather of row-wise pooled embeddings are timed but "
                            "their bytes are not counted per call; without host 0's NIC trace, bytes, wire_s, "
                            "bound and efficiency are left out")
    if trace:
        row["nic"] = _nic(trace, per_rank, cfg, rate)
        wire_from_nic(row, rate, cfg.num_hosts)
    return row


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Long: one orchestration (gate, check, calibrate, C_s pass, run, summarise) in one readable sequence."""
    from benchmarks.emulated.nic import NicSampler

    log = log or (lambda msg: None)
    check_netns_permitted()
    _check(cfg)
    gate = check_load(cfg.force)
    runs, skipped = strategy_list(cfg)
    cores = _cores(cfg)
    opts = BenchOptions(tuple(runs), cfg.spec, cfg.num_hosts, cfg.local_size, cfg.per_rank_batch, cfg.steps,
                        cfg.warmup, feed=cfg.feed, tower_module=cfg.tower_module, dense_sync=cfg.dense_sync,
                        interleave=cfg.interleave, pipeline=cfg.pipeline,
                        pipeline_chunks=cfg.pipeline_chunks, dedup_ids=cfg.dedup_ids)
    load_before, started = loadavg(), time.time()
    rate = cfg.inter_bw_bits or 1e9
    calibration: dict[str, Any] = {}
    unthrottled: dict[str, dict[str, Any]] = {}
    trace: list = []
    launches, auto = 1, None
    ncores = len(set(rank_cores(cfg.num_hosts * cfg.local_size, cores))) if cores else (os.cpu_count() or 1)
    with Emulation(cfg.num_hosts, LinkSpec(rate, cfg.inter_delay_s), lock_wait_s=cfg.timeout_s) as emu:
        if cfg.wire_share is not None and cfg.inter_bw_bits is None:
            calibration = _calibrate(cfg, opts, cores, emu, log)
            rate = calibration["rate_bits"]
            launches += 2
        if cfg.with_auto:
            from benchmarks.emulated.auto_row import plan_auto_run

            opts, runs, auto = plan_auto_run(cfg, opts, runs, rate, cfg.num_hosts * cfg.local_size / ncores, log)
        if cfg.bound:
            log(f"non-wire times: every run interleaved at {cfg.calibration_bw_bits / 1e6:.0f} Mbit/s")
            unthrottled = _rows_at(cfg, opts, cores, emu, cfg.calibration_bw_bits, tuple(runs))
            launches += 1
        emu.set_link(LinkSpec(rate, cfg.inter_delay_s))
        log(f"running {', '.join(run_key(*r) for r in runs)} interleaved at {rate / 1e6:.1f} Mbit/s")
        if cfg.nic_trace:
            with NicSampler(host_ns(0), HOST_IFNAME) as sampler:
                results = _launch(cfg, opts, cores)
            trace = sampler.trace
        else:
            results = _launch(cfg, opts, cores)
    leftovers = list_leftovers()
    load_after = loadavg()
    for key, why in results[0].get("errors", {}).items():
        skipped[key] = f"refused on CPU: {why}"
    probe = results[0]["probe"]
    share = statistics.fmean(x for r in results for x in r.get("cpu_share", [])) if results[0].get("cpu_share") else None
    rows = [_row(cfg, s, c, w, results, trace, rate, probe, ncores) for s, c, w in runs
            if run_key(s, c, w) in results[0]["runs"]]
    non_wire = {k: non_wire_time(r) for k, r in unthrottled.items()}
    if auto:
        from benchmarks.emulated.auto_row import add_auto_rows

        add_auto_rows(rows, auto, non_wire)
    claims = add_claims(rows)
    non_wire = non_wire_times(unthrottled, rows, cfg.calibration_bw_bits)
    floors = {k: cpu_floor(r) for k, r in unthrottled.items() if cpu_floor(r) is not None}
    flat_share = add_honest_bounds(rows, non_wire, floors)
    return {
        "config": {"emulate": f"{cfg.num_hosts}x{cfg.local_size}", "inter_bw_bits": rate,
                   "inter_delay_s": cfg.inter_delay_s, "model": cfg.spec, "per_rank_batch": cfg.per_rank_batch,
                   "steps": cfg.steps, "warmup": cfg.warmup, "compressions": list(cfg.compressions),
                   "wire_dtypes": list(cfg.wire_dtypes), "feed": cfg.feed, "tower_module": cfg.tower_module,
                   "dense_sync": cfg.dense_sync, "pinned_cores": cores, "interleaved": cfg.interleave,
                   "all_to_all": cfg.all_to_all, "wire_share_target": cfg.wire_share, "pipeline": cfg.pipeline,
                   "pipeline_chunks": cfg.pipeline_chunks, "dedup_ids": cfg.dedup_ids,
                   "auto": cfg.with_auto, **_workload()},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "load_before": load_before, "load_after": load_after, "load_gate": gate, "launches": launches,
        "loaded_box": bool(gate["forced"]), "calibration": calibration,
        "non_wire_s": non_wire, "cpu_floor_unthrottled_s": floors,
        "cpu_share_per_rank": share, "flat_measured_exchange_share": flat_share,
        "wire_share_target": cfg.wire_share, "best_baseline": claims["best_baseline"],
        "best_baseline_basis": claims["basis"], "probe": probe, "results": rows, "skipped": skipped,
        "teardown": {"clean": not leftovers, "leftover_namespaces": leftovers}, "elapsed_s": time.time() - started,
    }


def _nic(trace: list, per_rank: list[dict[str, Any]], cfg: BenchConfig, rate_bits: float) -> dict[str, Any]:
    """Host 0's NIC during this run's cross-host exchanges, and a 10 ms timeline of its median step."""
    from benchmarks.emulated.nic import duplex_profile, step_bytes, timeline, window_bytes, window_bytes_range

    host0 = [r for r in per_rank if r["rank"] // cfg.local_size == 0]
    windows = [(a, b) for r in host0 for s in r["timer"] for a, b, sent, got in s["spans"] if sent or got]
    out: dict[str, Any] = {"profile": duplex_profile(trace, windows, rate_bits / 8)}
    steps = min(len(r["step_s"]) for r in per_rank)
    if steps:
        ends = [max(r["t0"][i] + r["step_s"][i] for r in per_rank) for i in range(steps)]
        starts = [min(r["t0"][i] for r in per_rank) for i in range(steps)]
        steps_at = list(zip(starts, ends))
        out["measured_host0"] = step_bytes(window_bytes(trace, steps_at), window_bytes_range(trace, steps_at))
        k = sorted(range(steps), key=lambda i: ends[i] - starts[i])[steps // 2]
        out["median_step_timeline_10ms"] = timeline(trace, starts[k], ends[k], rate_bits / 8, dt=0.01)
    return out
