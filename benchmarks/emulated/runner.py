"""Run every strategy on one emulated network, interleaved, and collect the report (see :mod:`.analysis`).

:func:`run_benchmark` builds the namespaces once (:class:`~benchmarks.emulated.netns.Emulation`)
and always tears them down (``finally``, SIGINT/SIGTERM). With a target flat wire share
(``wire_share``) it first measures flat alone at a fast calibration rate: its step time there is
(almost) all non-wire time ``C``, and its busiest NIC direction carries ``X`` bytes per step, so
the rate that makes flat's wire time ``w / (1 - w)`` of ``C`` is ``X (1 - w) / (w C)``; the links
are reshaped to it. Then one ``launch_local`` job runs all strategies in one process per rank,
interleaved (:mod:`.worker`), ranks pinned to cores (consecutive ranks share a core), while a
sampler traces host 0's NIC every 10 ms (:mod:`.nic`). Load average is recorded before and after.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from benchmarks.emulated.analysis import WIRE_EFFICIENCY, add_bounds, add_ratios, summarize
from benchmarks.emulated.model import MODEL_SPEC
from benchmarks.emulated.predict import calibrate_runs, predict
from benchmarks.emulated.netns import (HOST_IFNAME, Emulation, EmulationError, LinkSpec, RankNetns,
                                           check_netns_permitted, host_ns, list_leftovers, rank_cores)
from benchmarks.emulated.torchrec_worker import torchrec_available
from benchmarks.emulated.worker import BenchOptions, bench_worker, run_key

__all__ = ["BenchConfig", "run_benchmark", "strategy_list", "rate_for_wire_share", "loadavg"]

STRATEGIES = ("flat", "torchrec_tw", "sptt", "sptt_tm")


@dataclass(frozen=True)
class BenchConfig:
    num_hosts: int = 2
    local_size: int = 2
    inter_bw_bits: float | None = None  # None: 1 Gbit/s, or chosen from wire_share
    wire_share: float | None = None  # target flat wire share in (0, 1)
    inter_delay_s: float = 0.0
    spec: str = MODEL_SPEC
    per_rank_batch: int = 1024
    steps: int = 10
    warmup: int = 2
    compressions: tuple[float, ...] = (4.0, 16.0)
    torchrec: bool = True
    timeout_s: float = 900.0
    strategies: tuple[str, ...] = field(default=STRATEGIES)
    feed: str = "auto"
    tower_module: str = "linear"
    dense_sync: str = "hierarchical"
    pin: bool = True
    interleave: bool = True
    nic_trace: bool = True
    all_to_all: str = "auto"  # auto (full-duplex p2p on gloo) | collective (all_to_all_single)
    pipeline: bool = False  # prefetch the next step's ids (IdsPipeline)
    calibration_bw_bits: float = 10e9
    calibration_steps: int = 6


def loadavg() -> list[float]:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:  # pragma: no cover - not Linux
        return []


def strategy_list(cfg: BenchConfig) -> tuple[list[tuple[str, float | None]], dict[str, str]]:
    """``[(strategy, compression)]`` to run, and ``{strategy: why skipped}``."""
    runs: list[tuple[str, float | None]] = []
    skipped: dict[str, str] = {}
    for s in cfg.strategies:
        if s == "torchrec_tw":
            why = torchrec_available()
            if not cfg.torchrec:
                skipped[s] = "disabled (--no-torchrec)"
            elif why is not None:
                skipped[s] = f"torchrec is not importable: {why}"
            elif cfg.spec != MODEL_SPEC:
                skipped[s] = f"the TorchRec baseline is built for the default model {MODEL_SPEC} only"
            else:
                runs.append((s, None))
        elif s == "sptt_tm":
            runs.extend(("sptt_tm", float(c)) for c in cfg.compressions)
        elif s in ("flat", "sptt"):
            runs.append((s, None))
        else:
            raise EmulationError(f"unknown strategy {s!r}", "use " + ", ".join(STRATEGIES))
    return runs, skipped


def _check(cfg: BenchConfig) -> None:
    from dmt_compile.ir.feed import FEEDS

    if cfg.feed not in FEEDS:
        raise EmulationError(f"--feed {cfg.feed!r} is not available in this build (feeds: {', '.join(FEEDS)})",
                             "choose one of those feeds; 'hierarchical' needs the hierarchical Tower-Module feed")
    from dmt_compile.tower_modules import TOWER_MODULES

    if cfg.tower_module not in TOWER_MODULES or cfg.tower_module == "identity":
        raise EmulationError(f"--tower-module {cfg.tower_module!r} is not a compressing Tower Module",
                             "choose one of " + ", ".join(sorted(set(TOWER_MODULES) - {"identity"})))
    if cfg.wire_share is not None and not 0.0 < cfg.wire_share < 1.0:
        raise EmulationError(f"--wire-share {cfg.wire_share} is not in (0, 1)", "give e.g. 0.84 or 0.275")
    if cfg.dense_sync not in ("hierarchical", "flat"):
        raise EmulationError(f"unknown dense sync {cfg.dense_sync!r}", "use hierarchical or flat")
    if cfg.all_to_all not in ("auto", "p2p", "collective"):
        raise EmulationError(f"unknown all-to-all mode {cfg.all_to_all!r}", "use auto, p2p or collective")


def rate_for_wire_share(step_s: float, nic_bytes: float, rate_bits: float, share: float) -> float:
    """Bits/s at which flat's NIC time is ``share`` of its step, from one step measured at ``rate_bits``."""
    wire = nic_bytes / (rate_bits / 8 * WIRE_EFFICIENCY)
    compute = step_s - wire
    if compute <= 0 or nic_bytes <= 0:
        raise EmulationError(f"flat's step ({step_s * 1e3:.1f} ms) is all wire at the calibration rate",
                             "raise the calibration rate (calibration_bw_bits) or the batch")
    wire_target = share / (1 - share) * compute
    return 8 * nic_bytes / (wire_target * WIRE_EFFICIENCY)


def _launch(cfg: BenchConfig, opts: BenchOptions, cores: list[int] | None) -> list[dict[str, Any]]:
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import Topology

    topo = Topology(cfg.num_hosts, cfg.local_size)
    pinned = rank_cores(topo.world_size, cores) if cores else None
    return launch_local(bench_worker, topo, args=(opts,), timeout_s=cfg.timeout_s,
                        child_setup=RankNetns(cfg.local_size, pinned), env={"DMT_ALL_TO_ALL": cfg.all_to_all})


def _per_run(results: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [dict(r["runs"][key], rank=r["rank"]) for r in results]


def _flat_once(cfg: BenchConfig, opts: BenchOptions, cores, emu: Emulation, rate: float) -> dict[str, Any]:
    emu.set_link(LinkSpec(rate, cfg.inter_delay_s))
    flat = replace(opts, runs=(("flat", None),), steps=cfg.calibration_steps, warmup=1, probe=False)
    rows = _per_run(_launch(cfg, flat, cores), run_key("flat", None))
    return summarize("flat", None, rows, num_hosts=cfg.num_hosts, local_size=cfg.local_size, rate_bytes=rate / 8,
                     delay_s=cfg.inter_delay_s, towers=[], probe={})


def _calibrate(cfg: BenchConfig, opts: BenchOptions, cores, emu: Emulation, log) -> dict[str, float]:
    """Two passes: flat at the fast calibration rate gives its non-wire time and the rate for the
    target share; flat again at that rate corrects the non-wire time (it changes with the rate
    and the box's load) and gives the rate used."""
    rate, passes = cfg.calibration_bw_bits, []
    for _ in range(2):
        row = _flat_once(cfg, opts, cores, emu, rate)
        new = rate_for_wire_share(row["step_time_median_s"], row["nic_bytes_busiest_direction"], rate,
                                  cfg.wire_share)
        passes.append({"rate_bits": rate, "flat_step_s": row["step_time_median_s"],
                       "nic_bytes": row["nic_bytes_busiest_direction"], "wire_share": row["nic_limit_s"] /
                       row["step_time_median_s"], "next_rate_bits": new})
        log(f"calibration: flat {row['step_time_median_s'] * 1e3:.1f} ms at {rate / 1e6:.1f} Mbit/s "
            f"(wire share {passes[-1]['wire_share']:.3f}) -> {new / 1e6:.1f} Mbit/s for {cfg.wire_share:g}")
        rate = new
    return {"passes": passes, "rate_bits": rate}


def _cores(cfg: BenchConfig) -> list[int] | None:
    if not cfg.pin or not hasattr(os, "sched_getaffinity"):
        return None
    return sorted(os.sched_getaffinity(0))


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Long: one orchestration (check, calibrate, run, summarise) kept in one readable sequence."""
    from benchmarks.emulated.nic import NicSampler

    log = log or (lambda msg: None)
    check_netns_permitted()
    _check(cfg)
    runs, skipped = strategy_list(cfg)
    cores = _cores(cfg)
    opts = BenchOptions(tuple(runs), cfg.spec, cfg.num_hosts, cfg.local_size, cfg.per_rank_batch, cfg.steps,
                        cfg.warmup, feed=cfg.feed, tower_module=cfg.tower_module, dense_sync=cfg.dense_sync,
                        interleave=cfg.interleave,
                        pipeline=cfg.pipeline)
    load_before, started = loadavg(), time.time()
    calib = calibrate_runs(runs, opts, log)
    rate = cfg.inter_bw_bits or 1e9
    calibration: dict[str, float] = {}
    trace: list = []
    with Emulation(cfg.num_hosts, LinkSpec(rate, cfg.inter_delay_s), lock_wait_s=cfg.timeout_s) as emu:
        if cfg.wire_share is not None and cfg.inter_bw_bits is None:
            calibration = _calibrate(cfg, opts, cores, emu, log)
            rate = calibration["rate_bits"]
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
    probe = results[0]["probe"]
    share = statistics.fmean(x for r in results for x in r.get("cpu_share", [])) if results[0].get("cpu_share") else None
    ncores = len(set(rank_cores(cfg.num_hosts * cfg.local_size, cores))) if cores else (os.cpu_count() or 1)
    rows, flat_towers = [], None
    for strategy, c in runs:
        per_rank = _per_run(results, run_key(strategy, c))
        towers = per_rank[0]["towers"] or flat_towers or []
        flat_towers = flat_towers or (towers if strategy == "flat" else None)
        row = summarize(strategy, c, per_rank, num_hosts=cfg.num_hosts, local_size=cfg.local_size,
                        rate_bytes=rate / 8, delay_s=cfg.inter_delay_s, towers=towers, probe=probe, cores=ncores)
        row["feed"] = sorted({t.get("feed") or "-" for t in towers}) if strategy.startswith("sptt") else None
        if trace:
            row["nic"] = _nic(trace, per_rank, cfg, rate)
        key = run_key(strategy, c)
        if key in calib and probe:
            row.update(predict(row, calib[key], num_hosts=cfg.num_hosts, local_size=cfg.local_size, rate_bits=rate,
                               probe=probe, ranks_per_core=1 / share if share else cfg.num_hosts * cfg.local_size / ncores,
                               delay_s=cfg.inter_delay_s))
            row["step_prediction_error"] = row["predicted_step_s"] / row["step_time_median_s"] - 1
            row["prediction_error"] = row["predicted_exchange_s"] / row["exchange_time_median_s"] - 1
        rows.append(row)
    add_ratios(rows)
    w = add_bounds(rows)
    return {
        "config": {"emulate": f"{cfg.num_hosts}x{cfg.local_size}", "inter_bw_bits": rate,
                   "inter_delay_s": cfg.inter_delay_s, "model": cfg.spec, "per_rank_batch": cfg.per_rank_batch,
                   "steps": cfg.steps, "warmup": cfg.warmup, "compressions": list(cfg.compressions),
                   "feed": cfg.feed, "tower_module": cfg.tower_module, "dense_sync": cfg.dense_sync, "pinned_cores": cores, "interleaved": cfg.interleave,
                   "all_to_all": cfg.all_to_all, "wire_share_target": cfg.wire_share, "pipeline": cfg.pipeline},
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "calibration": calibration, "compute_calibration": calib, "cpu_share_per_rank": share, "wire_share": w,
        "probe": probe, "results": rows, "skipped": skipped,
        "teardown": {"clean": not leftovers, "leftover_namespaces": leftovers}, "elapsed_s": time.time() - started,
    }


def _nic(trace: list, per_rank: list[dict[str, Any]], cfg: BenchConfig, rate_bits: float) -> dict[str, Any]:
    """Host 0's NIC during this run's cross-host exchanges, and a 10 ms timeline of its median step."""
    from benchmarks.emulated.nic import duplex_profile, timeline

    host0 = [r for r in per_rank if r["rank"] // cfg.local_size == 0]
    windows = [(a, b) for r in host0 for s in r["timer"] for a, b, sent, got in s["spans"] if sent or got]
    out: dict[str, Any] = {"profile": duplex_profile(trace, windows, rate_bits / 8)}
    steps = min(len(r["step_s"]) for r in per_rank)
    if steps:
        ends = [max(r["t0"][i] + r["step_s"][i] for r in per_rank) for i in range(steps)]
        starts = [min(r["t0"][i] for r in per_rank) for i in range(steps)]
        k = sorted(range(steps), key=lambda i: ends[i] - starts[i])[steps // 2]
        out["median_step_timeline_10ms"] = timeline(trace, starts[k], ends[k], rate_bits / 8, dt=0.01)
    return out
