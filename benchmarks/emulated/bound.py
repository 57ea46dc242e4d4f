"""The honest bound of a strategy's speedup over flat, and the NIC rate for a measured exchange share.

**Bound.** Each strategy ``s`` is first timed at a fast, unthrottled rate (interleaved, like the main
run): its step there minus its own wire time at that rate is its **non-wire time** ``C_s`` (compute,
loopback exchanges, gradient sync, waiting on other ranks' compute). At the timed rate its **wire
time** is ``wire_s`` = its busiest host NIC direction's bytes / (rate x 1448/1514). Without overlap
of compute and wire, its step cannot be shorter than ``C_s + wire_s``, so its speedup over flat is
at most ``bound = flat_step / (C_s + wire_s)``; ``efficiency = measured speedup / bound`` =
``(C_s + wire_s) / step_s``. Above :data:`EFFICIENCY_LIMIT` the row is flagged: the strategy overlapped
compute with the wire, or one of the measurements is wrong; either needs explaining. Unlike an
Amdahl bound from flat's residual ``(1 - w) step``, ``C_s`` is the strategy's **own** non-wire time:
flat's waiting on a shared NIC is not credited to a strategy that sends fewer bytes.

**Measured share.** ``--wire-share w`` targets flat's *measured* exchange share (time inside
exchanges / step), not the ideal NIC-limit share: :func:`rate_for_measured_share`.
"""
from __future__ import annotations

from typing import Any

from benchmarks.emulated.analysis import WIRE_EFFICIENCY
from benchmarks.emulated.netns import EmulationError

__all__ = ["EFFICIENCY_LIMIT", "non_wire_time", "add_honest_bounds", "rate_for_measured_share"]

EFFICIENCY_LIMIT = 1.05


def non_wire_time(row: dict[str, Any]) -> float:
    """``C_s`` of a row timed at an unthrottled rate: its step minus its own NIC time there (>= 0)."""
    return max(0.0, row["step_time_median_s"] - row["nic_limit_s"])


def add_honest_bounds(rows: list[dict[str, Any]], non_wire: dict[str, float]) -> float | None:
    """In place: ``non_wire_s``, ``wire_s``, ``bound``, ``efficiency``, ``efficiency_flag``,
    ``measured_exchange_share`` per row (``non_wire``: run key -> C_s); returns flat's measured share."""
    flat = next((r for r in rows if r["run"] == "flat"), None)
    for r in rows:
        r["measured_exchange_share"] = (r["exchange_time_median_s"] / r["step_time_median_s"]
                                        if r["step_time_median_s"] else None)
        c = non_wire.get(r["run"]) if r.get("wire_counted", True) else None
        r["non_wire_s"], r["wire_s"] = c, r["nic_limit_s"]
        if flat is None or c is None or c + r["nic_limit_s"] <= 0:
            r["bound"] = r["efficiency"] = None
            r["efficiency_flag"] = None
            continue
        r["bound"] = flat["step_time_median_s"] / (c + r["nic_limit_s"])
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
