"""Run every strategy on one emulated network and collect the report (see :mod:`.analysis`).

:func:`run_benchmark` builds the namespaces once (:class:`~dmt_compile.tools.bench.netns.Emulation`),
runs each strategy as its own ``launch_local`` job whose ranks enter their host's namespace
(``child_setup``), and always tears the network down (``finally``, SIGINT/SIGTERM). The first
strategy also probes the links (loopback and NIC bandwidth, small-message latency); the cost
model uses the probed loopback numbers and the configured NIC rate.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from dmt_compile.tools.bench.analysis import add_ratios, summarize
from dmt_compile.tools.bench.model import MODEL_SPEC
from dmt_compile.tools.bench.netns import (Emulation, EmulationError, LinkSpec, RankNetns, check_netns_permitted,
                                     list_leftovers)
from dmt_compile.tools.bench.torchrec_worker import torchrec_available, torchrec_worker
from dmt_compile.tools.bench.worker import BenchOptions, dmt_worker

__all__ = ["BenchConfig", "run_benchmark", "strategy_list"]


@dataclass(frozen=True)
class BenchConfig:
    num_hosts: int = 2
    local_size: int = 4
    inter_bw_bits: float = 1e9
    inter_delay_s: float = 0.0
    spec: str = MODEL_SPEC
    per_rank_batch: int = 1024
    steps: int = 10
    warmup: int = 2
    compressions: tuple[float, ...] = (4.0, 16.0)
    torchrec: bool = True
    timeout_s: float = 300.0
    strategies: tuple[str, ...] = field(default=("flat", "torchrec_tw", "sptt", "sptt_tm"))


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
            raise EmulationError(f"unknown strategy {s!r}", "use flat, torchrec_tw, sptt, sptt_tm")
    return runs, skipped


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    from dmt_compile.runtime.launch import launch_local
    from dmt_compile.topo import Topology

    log = log or (lambda msg: None)
    check_netns_permitted()
    runs, skipped = strategy_list(cfg)
    link = LinkSpec(cfg.inter_bw_bits, cfg.inter_delay_s)
    topo = Topology(cfg.num_hosts, cfg.local_size)
    rows: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    probe: dict[str, float] = {}
    flat_towers: list[dict[str, Any]] | None = None
    started = time.time()
    with Emulation(cfg.num_hosts, link):
        for i, (strategy, c) in enumerate(runs):
            opts = BenchOptions(strategy, cfg.spec, cfg.num_hosts, cfg.local_size, cfg.per_rank_batch,
                                cfg.steps, cfg.warmup, compression=c, probe=(i == 0 and strategy != "torchrec_tw"))
            worker = torchrec_worker if strategy == "torchrec_tw" else dmt_worker
            t0 = time.time()
            try:
                results = launch_local(worker, topo, args=(opts,), timeout_s=cfg.timeout_s,
                                       child_setup=RankNetns(cfg.local_size))
            except Exception as exc:  # noqa: BLE001 - one failing strategy must not lose the others
                if strategy != "torchrec_tw":
                    raise
                skipped[strategy] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                log(f"{strategy}: {skipped[strategy]}")
                continue
            probe = probe or results[0]["probe"]
            towers = results[0]["towers"] or flat_towers or []
            if strategy == "flat":
                flat_towers = towers
            row = summarize(strategy, c, results, num_hosts=cfg.num_hosts, local_size=cfg.local_size,
                            rate_bytes=link.rate_bytes, delay_s=cfg.inter_delay_s, towers=towers, probe=probe)
            row["wall_s"] = time.time() - t0
            rows.append(row)
            raw[f"{strategy}" + (f"@{c:g}" if c else "")] = results
            log(f"{strategy}{'' if c is None else f' c={c:g}'}: step {row['step_time_median_s'] * 1e3:.1f} ms, "
                f"exchange {row['exchange_time_median_s'] * 1e3:.1f} ms ({row['wall_s']:.0f} s)")
    leftovers = list_leftovers()
    add_ratios(rows)
    return {
        "config": {"emulate": f"{cfg.num_hosts}x{cfg.local_size}", "inter_bw_bits": cfg.inter_bw_bits,
                   "inter_delay_s": cfg.inter_delay_s, "model": cfg.spec, "per_rank_batch": cfg.per_rank_batch,
                   "steps": cfg.steps, "warmup": cfg.warmup, "compressions": list(cfg.compressions)},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count()},
        "probe": probe,
        "results": rows,
        "skipped": skipped,
        "teardown": {"clean": not leftovers, "leftover_namespaces": leftovers},
        "elapsed_s": time.time() - started,
    }
