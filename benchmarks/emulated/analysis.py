"""Turn per-rank worker results into one row per strategy: times, bytes, physical limit, cost model.

Definitions (all per training step, after warm-up; medians over the measured steps):

* **step time**: the slowest rank's wall time of the step (every step starts after a barrier).
* **exchange time** (``exchange_time_median_s``): for each all-to-all of the step (ids, counts,
  lookups, outputs, fwd and bwd, in call order), the interval from the first rank entering it to
  the last rank leaving it (one system-wide monotonic clock: all ranks run on this box); the
  length of the union of these intervals over the step. ``exchange_wait_median_s`` is the plain
  per-rank time inside the exchanges (mean over ranks, including waiting for slower ranks);
  ``exchange_last_arriver_median_s`` sums, per exchange, the time of the rank that arrived last
  (a lower bound: data sent early sits in socket buffers before it arrives).
* **bytes per link class**: payload bytes a rank sends to ranks of its own host (``intra``) or of
  another host (``cross``), mean over ranks; ``messages`` = non-empty blocks sent.
* **analytic minimum** of cross-host bytes per rank: ``(N-1)/N * b * sum_t (s_id I_t + 2 s_e o_t)``
  (ids once, outputs forward, their gradients backward, nothing else; ``o_t`` = tower width out, the
  raw embedding width for flat/identity). Placement-independent as a mean over ranks.
* **NIC limit**: the busiest host NIC direction's payload bytes / (rate x 1448/1514) (TCP/IPv4
  with timestamps in 1500-byte Ethernet frames; tbf counts whole frames).
* **CPU validity**: per step, the CPU seconds of all ranks (every thread of each process) / the
  cores they run on = the step time the box needs at the very least; ``cpu_busy`` = that / the
  step time. Near 1 the box, not the network, sets the step time (``box_bound``).
* **measured exchange share**: exchange time / step time (flat's is what ``--wire-share`` targets);
  the bound and efficiency of each strategy are in :mod:`.bound`, speedups with confidence
  intervals in :mod:`.headline`. ``step_samples_s`` keeps the per-round step times.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

__all__ = ["summarize", "analytic_min_cross", "WIRE_EFFICIENCY", "BOX_BOUND"]

WIRE_EFFICIENCY = 1448 / 1514
BOX_BOUND = 0.8  # cpu_busy above this: the box, not the network, sets the step time
ID_BYTES, ELEM_BYTES = 8, 4


def _median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def analytic_min_cross(towers: list[dict[str, Any]], num_hosts: int, b: int) -> float:
    per_sample = sum(ID_BYTES * t["ids"] + 2 * ELEM_BYTES * t["width_out"] for t in towers)
    return (num_hosts - 1) / num_hosts * b * per_sample


def _union_length(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _exchange_per_step(results: list[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """Per step: wall time the network spent in exchanges (span), last-arriver time, mean per-rank time."""
    steps = min(len(r["timer"]) for r in results)
    span, critical, waited = [], [], []
    for i in range(steps):
        calls = [r["timer"][i]["call_s"] for r in results]
        spans = [r["timer"][i]["spans"] for r in results]
        waited.append(statistics.fmean(r["timer"][i]["exchange_s"] for r in results))
        if len({len(c) for c in calls}) == 1:
            critical.append(sum(min(c[k] for c in calls) for k in range(len(calls[0]))))
            span.append(_union_length([(min(s[k][0] for s in spans), max(s[k][1] for s in spans))
                                       for k in range(len(spans[0]))]))
        else:  # ranks ran different exchanges: fall back to the mean
            critical.append(waited[-1])
            span.append(waited[-1])
    return span, critical, waited


def _cpu(results: list[dict[str, Any]], step: list[float], cores: int) -> dict[str, Any]:
    steps = len(step)
    total = [sum(r["cpu_s"][i] for r in results) for i in range(steps)]
    busy = [t / cores / s for t, s in zip(total, step)]
    med = _median(busy)
    return {"cpu_s_per_step_all_ranks": _median(total), "cpu_bound_s": _median(total) / cores,
            "cpu_busy": med, "cores": cores, "box_bound": bool(med > BOX_BOUND)}


def summarize(strategy: str, compression: float | None, results: list[dict[str, Any]], *, num_hosts: int,
              local_size: int, rate_bytes: float, delay_s: float, towers: list[dict[str, Any]],
              probe: dict[str, float], cores: int = 1) -> dict[str, Any]:
    """One report row from the per-rank records of one run (each with its ``rank``)."""
    world = num_hosts * local_size
    steps = min(len(r["step_s"]) for r in results)
    step = [max(r["step_s"][i] for r in results) for i in range(steps)]
    span, critical, waited = _exchange_per_step(results)
    sync = [max(r["timer"][i]["sync_s"] for r in results) for i in range(steps)]
    b = results[0]["batch_per_rank"]

    def link(cls: str, key: str) -> float:
        return statistics.fmean(statistics.fmean(s["links"][cls][key] for s in r["timer"]) for r in results)

    # busiest host NIC direction (payload bytes per step)
    nic = 0.0
    for h in range(num_hosts):
        mine = [r for r in results if r["rank"] // local_size == h]
        for key in ("bytes_sent", "bytes_recv"):
            nic = max(nic, sum(statistics.fmean(s["links"]["cross"][key] for s in r["timer"]) for r in mine))
    nic_limit = nic / (rate_bytes * WIRE_EFFICIENCY)
    cross = link("cross", "bytes_sent")
    amin = analytic_min_cross(towers, num_hosts, b)
    exch = _median(span)
    row: dict[str, Any] = {
        "strategy": strategy, "compression": compression, "world": world, "batch_per_rank": b, "steps": steps,
        "step_time_median_s": _median(step), "step_samples_s": step, "step_time_p10_s": _quantile(step, 0.1),
        "step_time_p90_s": _quantile(step, 0.9), "step_time_min_s": min(step), "step_time_max_s": max(step),
        "exchange_time_median_s": exch, "exchange_time_p10_s": _quantile(span, 0.1),
        "exchange_time_p90_s": _quantile(span, 0.9), "exchange_wait_median_s": _median(waited),
        "exchange_last_arriver_median_s": _median(critical),
        "sync_time_median_s": _median(sync),
        "cross_host_bytes_per_rank": cross, "intra_host_bytes_per_rank": link("intra", "bytes_sent"),
        "cross_host_messages_per_rank": link("cross", "messages_sent"),
        "intra_host_messages_per_rank": link("intra", "messages_sent"),
        "analytic_min_cross_host_bytes_per_rank": amin,
        "cross_bytes_vs_min": cross / amin if amin else None,
        "nic_bytes_busiest_direction": nic, "nic_limit_s": nic_limit,
        "exchange_vs_nic_limit": exch / nic_limit if nic_limit else None,
        **_cpu(results, step, cores),
    }
    stats = [r.get("stats") or {} for r in results]
    row["bytes_consistent"] = _consistent(results, steps) if any(stats) else None
    if any(stats):
        row["runtime_stats_bytes_per_rank"] = {
            lab: statistics.fmean(s.get(lab, {}).get("bytes_sent", 0) for s in stats) / steps
            for lab in sorted({k for s in stats for k in s})}
    return row


def _consistent(results: list[dict[str, Any]], steps: int) -> bool:
    """Per rank: all-to-all bytes seen on the wire (timer) == the runtime's own counters.

    Compared: the total over both link classes against every all-to-all op of the runtime's
    counters, and for SPTT the cross-host bytes against the ``cross`` label; gradient reductions
    (ops named ``*grads*``) are excluded on both sides. (The flat baseline's world exchanges are
    split by host on the wire; the sum over both link classes is compared.)
    """
    def exchanged(key: str) -> bool:
        label, _, op = key.partition("/")
        return ":" not in label and "grads" not in op

    for r in results:
        by_op = r.get("stats_by_op") or {}
        counted = sum(c["bytes_sent"] for key, c in by_op.items() if exchanged(key))
        seen = sum(s["links"][k]["bytes_sent"] for s in r["timer"] for k in ("intra", "cross"))
        if counted != seen or len(r["timer"]) != steps:
            return False
        cross = sum(c["bytes_sent"] for key, c in by_op.items() if key.startswith("cross/") and exchanged(key))
        if cross and cross != sum(s["links"]["cross"]["bytes_sent"] for s in r["timer"]):
            return False
    return True
