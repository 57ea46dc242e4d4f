"""The honest bound of a strategy's speedup over flat, and the NIC rate for a measured exchange share.

**Bound (a roofline: it bounds).** At the timed rate a strategy ``s`` cannot finish a step faster
than its wire allows, ``wire_s`` = its busiest host NIC direction's bytes / (rate x 1448/1514), nor
faster than the box can do its CPU work, ``cpu_floor_s`` = the CPU seconds of all ranks per step /
cores (the smaller of the unthrottled pass's and the timed run's own). So ``step_s >= floor_s =
max(wire_s, cpu_floor_s)`` whatever overlaps with what, its speedup over flat is at most ``bound =
flat_step / floor_s``, and ``efficiency = speedup / bound = floor_s / step_s <= 1``. Above
:data:`EFFICIENCY_LIMIT` the row is flagged: a measurement is wrong.

**No-overlap estimate (not a bound).** Each strategy is also timed unthrottled (interleaved, like the
main run): its step there minus its own wire time there is its **non-wire time** ``C_s``; without any
overlap of compute and wire its step would be ``C_s + wire_s`` (``no_overlap_step_s``), and
``overlap_ratio = (C_s + wire_s) / step_s`` says how much overlap (and less CPU contention than at the
unthrottled rate) it got: above 1 it beat the serial sum. Flat's own ratio is the calibration: flat's
speedup over itself is exactly 1, so any excess there is overlap, not a faster strategy. ``C_s`` is
the strategy's **own**: flat's waiting on a shared NIC is not credited to one that sends fewer bytes.

**Wire bytes from the NIC.** A row whose exchanges are not all counted per call (TorchRec RW and
TWRW: reduce-scatter / all-gather of pooled embeddings, ``wire_counted`` false) takes its bytes from
host 0's NIC counters over its steps (:func:`wire_from_nic`; Ethernet bytes of the busier direction,
converted to payload-equivalent bytes by the same 1448/1514); its ``C_s`` subtracts those bytes at
the unthrottled rate (:func:`non_wire_times`). Every row with a trace also gets
``nic_measured_vs_counted``: measured Ethernet bytes over counted payload / (1448/1514), ~1 when
the counters see everything (above 1 by ACKs, gradient all-reduces and barriers), and
``nic_measured_spread``: how far the per-step bytes could be off from the interpolation between
10 ms samples (near 0 on an idle box; a sampler that falls behind on a loaded box smears the
neighbouring steps' bytes into small-byte rows). With more than
two hosts host 0 stands for every host (the shardings here are symmetric).

**Measured share.** ``--wire-share w`` targets flat's *measured* exchange share (time inside
exchanges / step), not the ideal NIC-limit share: :func:`rate_for_measured_share` from the first
(fast) calibration pass, then :func:`next_calibration_rate`: a secant on the measured passes (the
logit of the share against the log of the rate), because flat's non-exchange time grows as the NIC
slows and one correction lands short (0.74 measured for a 0.9 target with two passes).
"""
from __future__ import annotations

import math
from typing import Any

from benchmarks.emulated.analysis import WIRE_EFFICIENCY
from benchmarks.emulated.netns import EmulationError

__all__ = ["EFFICIENCY_LIMIT", "NIC_SOURCE", "non_wire_time", "non_wire_times", "cpu_floor", "wire_from_nic",
           "add_honest_bounds", "rate_for_measured_share", "next_calibration_rate", "CALIBRATION_TOLERANCE"]

EFFICIENCY_LIMIT = 1.05
CALIBRATION_TOLERANCE = 0.015  # a calibration pass within this of the target share ends the calibration


def non_wire_time(row: dict[str, Any]) -> float:
    """``C_s`` of a row timed at an unthrottled rate: its step minus its own NIC time there (>= 0)."""
    return max(0.0, row["step_time_median_s"] - row["nic_limit_s"])


NIC_SOURCE = "host 0 NIC counters"


def wire_from_nic(row: dict[str, Any], rate_bits: float, num_hosts: int) -> None:
    """In place (module docstring): ``nic_measured_vs_counted``; for a row with ``wire_counted`` false
    and a measured trace, its NIC bytes and ``nic_limit_s`` from the counters, ``wire_source``."""
    nic = (row.get("nic") or {}).get("measured_host0") or {}
    measured = nic.get("busiest_bytes")
    if not measured:
        return
    counted = row["nic_bytes_busiest_direction"] / WIRE_EFFICIENCY
    row["nic_measured_vs_counted"] = measured / counted if counted else None
    lo, hi = nic.get("busiest_range") or (measured, measured)
    row["nic_measured_spread"] = (hi - lo) / measured  # > ~0.1: the sampler fell behind (loaded box)
    if row.get("wire_counted", True):
        row["wire_source"] = "counted payload"
        return
    row["nic_bytes_counted_busiest_direction"] = row["nic_bytes_busiest_direction"]
    row["nic_bytes_busiest_direction"] = measured * WIRE_EFFICIENCY
    row["nic_limit_s"] = measured / (rate_bits / 8)
    if row["nic_limit_s"]:
        row["exchange_vs_nic_limit"] = row["exchange_time_median_s"] / row["nic_limit_s"]
    row["wire_counted"] = True
    row["wire_source"] = NIC_SOURCE + (" (host 0 stands for every host)" if num_hosts > 2 else "")


def non_wire_times(unthrottled: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
                   rate_bits: float) -> dict[str, float]:
    """``C_s`` per run key from the unthrottled pass at `rate_bits`; rows whose wire bytes come from the
    NIC counters subtract those bytes (the same per step at every rate)."""
    out = {k: non_wire_time(r) for k, r in unthrottled.items()}
    for r in rows:
        if str(r.get("wire_source", "")).startswith(NIC_SOURCE) and r["run"] in unthrottled:
            wire = r["nic_bytes_busiest_direction"] / (rate_bits / 8 * WIRE_EFFICIENCY)
            out[r["run"]] = max(0.0, unthrottled[r["run"]]["step_time_median_s"] - wire)
    return out


def cpu_floor(row: dict[str, Any]) -> float | None:
    """The least time the box needs for a row's CPU work per step (all ranks' CPU seconds / cores)."""
    return row.get("cpu_bound_s")


def add_honest_bounds(rows: list[dict[str, Any]], non_wire: dict[str, float],
                      cpu_floors: dict[str, float] | None = None) -> float | None:
    """In place, per row: ``measured_exchange_share``, ``non_wire_s``, ``wire_s``, ``cpu_floor_s``,
    ``floor_s``, ``bound``, ``efficiency``, ``efficiency_flag``, ``no_overlap_step_s``, ``overlap_ratio``
    (``non_wire``: run key -> C_s; ``cpu_floors``: run key -> unthrottled CPU floor); returns flat's
    measured share. A row whose wire is not counted (``wire_counted: false``) gets no bound."""
    flat = next((r for r in rows if r["run"] == "flat"), None)
    for r in rows:
        step = r["step_time_median_s"]
        r["measured_exchange_share"] = r["exchange_time_median_s"] / step if step else None
        counted = r.get("wire_counted", True)
        c = non_wire.get(r["run"]) if counted else None
        r["non_wire_s"], r["wire_s"] = c, r["nic_limit_s"]
        floors = [x for x in ((cpu_floors or {}).get(r["run"]), r.get("cpu_bound_s")) if x is not None]
        r["cpu_floor_s"] = min(floors) if floors else None
        r["no_overlap_step_s"] = c + r["nic_limit_s"] if c is not None else None
        r["overlap_ratio"] = r["no_overlap_step_s"] / step if c is not None and step else None
        r["floor_s"] = max(r["nic_limit_s"], r["cpu_floor_s"]) if counted and floors else None
        r["bound"] = r["efficiency"] = r["efficiency_flag"] = None
        if flat is None or not r["floor_s"]:
            continue
        r["bound"] = flat["step_time_median_s"] / r["floor_s"]
        speedup = (r.get("speedup_vs_flat") or {}).get("median")
        r["efficiency"] = speedup / r["bound"] if speedup else None
        r["efficiency_flag"] = bool(r["efficiency"] is not None and r["efficiency"] > EFFICIENCY_LIMIT)
    return flat["measured_exchange_share"] if flat else None


def rate_for_measured_share(step_s: float, exchange_s: float, nic_bytes: float, rate_bits: float,
                            share: float) -> float:
    """Bits/s at which flat's measured exchange time is `share` of its step, from one run at `rate_bits`.

    Model: the non-exchange time ``N = step - exchange`` does not depend on the rate; the exchange
    time is a fixed part (latency, loopback, CPU) plus the NIC time ``bytes / rate``. Target
    exchange time ``share / (1 - share) * N``; the NIC must supply what the fixed part does not.
    """
    wire = nic_bytes / (rate_bits / 8 * WIRE_EFFICIENCY)
    other = step_s - exchange_s
    fixed = max(0.0, exchange_s - wire)
    need = share / (1 - share) * other - fixed
    if other <= 0 or nic_bytes <= 0 or need <= 0:
        raise EmulationError(f"flat's measured exchange share cannot reach {share:g} by shaping the NIC: "
                             f"non-exchange {other * 1e3:.1f} ms, exchange time not on the NIC {fixed * 1e3:.1f} ms",
                             "ask for a larger share, or a larger batch (more bytes per step)")
    return 8 * nic_bytes / (need * WIRE_EFFICIENCY)


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def next_calibration_rate(passes: list[dict[str, Any]], share: float, max_step: float = 4.0) -> float | None:
    """The rate of the next calibration pass, or None when the last pass is within
    :data:`CALIBRATION_TOLERANCE` of `share` (its rate is the one to time at).

    `passes`: ``{"rate_bits", "measured_exchange_share", "flat_step_s", "flat_exchange_s", "nic_bytes"}``
    in order. The share falls as the rate grows, so once one pass measured above the target and
    another below it at a higher rate, the target lies between them: the next rate is the secant
    through that bracket in (log rate, logit share), kept inside it. Without a bracket: one pass
    uses :func:`rate_for_measured_share`'s model; two or more a secant through the last two passes,
    falling back to the last pass's model when its step exceeds `max_step`x or its slope has the
    wrong sign (noise). Every guess stays on the side of the passes that bound it.

    Why a bracket: near a share of 1 the model of a single pass is poor (at share 0.977, 131 Mbit/s,
    it put the rate for 0.9 at 2.2 Gbit/s, which measured 0.45), and a secant step beyond
    `max_step` used to fall back to it; the secant through the bracket (10 Gbit/s: 0.44) says 0.7.
    """
    last = passes[-1]
    if len(passes) > 1 and abs(last["measured_exchange_share"] - share) <= CALIBRATION_TOLERANCE:
        return None
    model = rate_for_measured_share(last["flat_step_s"], last["flat_exchange_s"], last["nic_bytes"],
                                    last["rate_bits"], share)
    slow = [p["rate_bits"] for p in passes if p["measured_exchange_share"] > share]  # too slow: share above
    fast = [p["rate_bits"] for p in passes if p["measured_exchange_share"] < share]
    lo, hi = (max(slow) if slow else None), (min(fast) if fast else None)
    if lo is not None and hi is not None and lo < hi:
        a = next(p for p in passes if p["rate_bits"] == lo)
        b = next(p for p in passes if p["rate_bits"] == hi)
        return _inside(_secant(a, b, share), lo, hi)
    guess = model
    if len(passes) > 1:
        secant = _secant(passes[-2], last, share)
        if secant is not None and 1 / max_step <= secant / last["rate_bits"] <= max_step:
            guess = secant
    if lo is None or hi is None:  # one side known (a noisy, crossed pair bounds nothing)
        if lo is not None:
            guess = max(guess, lo * 1.05)  # faster than a pass that measured too high a share
        if hi is not None:
            guess = min(guess, hi / 1.05)  # slower than a pass that measured too low a share
    return guess


def _secant(a: dict[str, Any], b: dict[str, Any], share: float) -> float | None:
    """The rate where the line through two passes in (log rate, logit share) meets `share`; None
    without a falling slope."""
    x0, x1 = math.log(a["rate_bits"]), math.log(b["rate_bits"])
    y0, y1 = _logit(a["measured_exchange_share"]), _logit(b["measured_exchange_share"])
    if x1 == x0 or (y1 - y0) / (x1 - x0) >= 0:  # no slope, or the wrong sign: noise, not the NIC
        return None
    return math.exp(x1 + (_logit(share) - y1) * (x1 - x0) / (y1 - y0))


def _inside(rate: float | None, lo: float, hi: float) -> float:
    """`rate` kept strictly inside the bracket [lo, hi] (its log-midpoint when the secant fails)."""
    x0, x1 = math.log(lo), math.log(hi)
    x = (x0 + x1) / 2 if rate is None else min(max(math.log(rate), x0 + 0.1 * (x1 - x0)), x1 - 0.1 * (x1 - x0))
    return math.exp(x)
