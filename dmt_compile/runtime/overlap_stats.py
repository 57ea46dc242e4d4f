"""How much of the exchanges' time is hidden behind compute, per rank.

Every instrumented exchange (`duplex.start` ... `wait()`) reports, when waited for, two intervals:
**overlapped** — from posting it to the first `wait()` call, when the caller computed instead of
waiting — and **exposed** — the time blocked inside `wait()`. ``hidden = overlapped / (overlapped +
exposed)``: 0 for a blocking exchange, 1 for one that was complete by the time it was waited for.
(An exchange that finished long before its wait counts that idle time as overlapped, so this is
the share of each exchange's life the caller did not block on, an upper bound of the transfer time
hidden.) Kept apart from :mod:`comm_stats` so byte counts stay deterministic.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["OverlapCounters", "record_overlap", "overlap_snapshot", "reset_overlap", "hidden_fraction"]


@dataclass
class OverlapCounters:
    calls: int = 0
    overlapped_s: float = 0.0
    exposed_s: float = 0.0

    @property
    def hidden(self) -> float:
        total = self.overlapped_s + self.exposed_s
        return self.overlapped_s / total if total > 0 else 0.0


_lock = threading.Lock()
_by_op: dict[str, OverlapCounters] = {}


def record_overlap(label: str, op: str, overlapped_s: float, exposed_s: float) -> None:
    """Add one waited exchange under ``label/op``."""
    with _lock:
        c = _by_op.setdefault(f"{label}/{op}", OverlapCounters())
        c.calls += 1
        c.overlapped_s += max(0.0, overlapped_s)
        c.exposed_s += max(0.0, exposed_s)


def overlap_snapshot() -> dict[str, dict[str, float]]:
    """``{label/op: {calls, overlapped_s, exposed_s, hidden}}`` on this rank."""
    with _lock:
        return {k: {"calls": c.calls, "overlapped_s": c.overlapped_s, "exposed_s": c.exposed_s, "hidden": c.hidden}
                for k, c in sorted(_by_op.items())}


def hidden_fraction(prefix: str = "") -> float:
    """Overlapped share of all exchanges whose ``label/op`` starts with ``prefix``."""
    with _lock:
        picked = [c for k, c in _by_op.items() if k.startswith(prefix)]
    over, exposed = sum(c.overlapped_s for c in picked), sum(c.exposed_s for c in picked)
    return over / (over + exposed) if over + exposed > 0 else 0.0


def reset_overlap() -> None:
    with _lock:
        _by_op.clear()
