"""A 10 ms NIC sampler for one emulated host, and what its trace says about duplex use of the link.

``python -m benchmarks.emulated.nic OUT IFNAME`` (run inside a host namespace with
``ip netns exec``) appends ``perf_counter tx_bytes rx_bytes`` of ``IFNAME`` (from that namespace's
``/proc/net/dev``) every 10 ms until SIGTERM, then writes ``OUT``. ``perf_counter`` is
``CLOCK_MONOTONIC``, the clock the ranks stamp their exchanges with, so the trace lines up with
them. :class:`NicSampler` starts and stops it from the parent; :func:`duplex_profile` puts the
counters on a fixed 10 ms grid over given windows (the exchanges that cross hosts) and reports
tx/rx utilisation, ``both_ways`` (share of bins with tx **and** rx above 30 % of the link) and
``one_way`` (one direction above 50 % while the other is under 10 %): a half-duplex exchange
shows ``one_way`` high and ``both_ways`` near zero. :func:`window_bytes` reads the bytes the
interface carried in given windows (each step of a run): what crossed the host's NIC whatever
collective sent it (Ethernet frames: payload, TCP/IP headers, ACKs, gradient all-reduces).
"""
from __future__ import annotations

import bisect
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

__all__ = ["NicSampler", "duplex_profile", "timeline", "read_counters", "window_bytes", "window_bytes_range",
           "step_bytes"]

INTERVAL_S = 0.010


def read_counters(ifname: str) -> tuple[int, int]:
    """(tx_bytes, rx_bytes) of ``ifname`` in this process's network namespace."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == ifname:
                v = rest.split()
                return int(v[8]), int(v[0])
    raise FileNotFoundError(f"no interface {ifname!r} in /proc/net/dev")


def _sample(out: str, ifname: str, limit_s: float = 3600.0) -> None:
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    rows: list[str] = []
    t_end = time.perf_counter() + limit_s
    nxt = time.perf_counter()
    while not stop[0] and time.perf_counter() < t_end:
        tx, rx = read_counters(ifname)
        rows.append(f"{time.perf_counter():.6f} {tx} {rx}\n")
        nxt += INTERVAL_S
        delay = nxt - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.perf_counter()
    with open(out, "w") as f:
        f.writelines(rows)


class NicSampler:
    """``with NicSampler("dmtb0", "eth0") as s: ...``; then ``s.trace``: [(t, tx_bytes, rx_bytes)]."""

    def __init__(self, netns: str, ifname: str):
        self.netns, self.ifname = netns, ifname
        self.trace: list[tuple[float, int, int]] = []
        self._proc: subprocess.Popen | None = None
        self._path = ""

    def __enter__(self) -> "NicSampler":
        fd, self._path = tempfile.mkstemp(prefix="dmtb-nic-", suffix=".txt")
        os.close(fd)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self._proc = subprocess.Popen(["ip", "netns", "exec", self.netns, sys.executable, "-m",
                                       "benchmarks.emulated.nic", self._path, self.ifname], env=env)
        time.sleep(0.3)  # let it start sampling
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        try:
            with open(self._path) as f:
                self.trace = [(float(a), int(b), int(c)) for a, b, c in (line.split() for line in f if line.strip())]
        finally:
            os.unlink(self._path)


def _cum(trace: Sequence[tuple[float, int, int]], times: list[float], t: float, i: int) -> float:
    k = bisect.bisect_left(times, t)
    if k <= 0:
        return float(trace[0][i])
    if k >= len(trace):
        return float(trace[-1][i])
    a, b = trace[k - 1], trace[k]
    return a[i] + (b[i] - a[i]) * (t - a[0]) / (b[0] - a[0])


def _bins(trace, times, t0: float, t1: float, rate: float, dt: float = INTERVAL_S) -> list[tuple[float, float]]:
    out, t = [], t0
    while t < t1 - 1e-9:
        e = min(t + dt, t1)
        out.append(((_cum(trace, times, e, 1) - _cum(trace, times, t, 1)) / (e - t) / rate,
                    (_cum(trace, times, e, 2) - _cum(trace, times, t, 2)) / (e - t) / rate))
        t = e
    return out


def duplex_profile(trace: Sequence[tuple[float, int, int]], windows: Sequence[tuple[float, float]],
                   rate_bytes: float) -> dict[str, float] | None:
    """Utilisation and duplex shares over ``windows`` (merged; 10 ms bins); None without data."""
    if len(trace) < 2 or not windows:
        return None
    times = [x[0] for x in trace]
    merged: list[list[float]] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    bins = [x for a, b in merged if a >= times[0] and b <= times[-1] for x in _bins(trace, times, a, b, rate_bytes)]
    if not bins:
        return None
    n = len(bins)
    return {"tx_util": sum(x[0] for x in bins) / n, "rx_util": sum(x[1] for x in bins) / n,
            "both_ways": sum(1 for tx, rx in bins if tx > 0.3 and rx > 0.3) / n,
            "one_way": sum(1 for tx, rx in bins if max(tx, rx) > 0.5 and min(tx, rx) < 0.1) / n,
            "bins": n}


def window_bytes(trace: Sequence[tuple[float, int, int]],
                 windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]] | None:
    """(tx bytes, rx bytes) the interface carried within each window (counters interpolated between
    samples); None without a trace or when a window lies outside it."""
    if len(trace) < 2 or not windows:
        return None
    times = [x[0] for x in trace]
    if any(a < times[0] or b > times[-1] for a, b in windows):
        return None
    return [(_cum(trace, times, b, 1) - _cum(trace, times, a, 1), _cum(trace, times, b, 2) - _cum(trace, times, a, 2))
            for a, b in windows]


def window_bytes_range(trace: Sequence[tuple[float, int, int]],
                       windows: Sequence[tuple[float, float]]) -> list[tuple[float, float, float, float]] | None:
    """Per window ``(tx_lo, tx_hi, rx_lo, rx_hi)``: bytes between the first and last sample inside it
    (lo) and between the samples just outside it (hi): what the interpolation of :func:`window_bytes`
    may be off by when the sampler fell behind (a loaded box)."""
    if len(trace) < 2 or not windows:
        return None
    times = [x[0] for x in trace]
    out = []
    for a, b in windows:
        i0, i1 = bisect.bisect_left(times, a), bisect.bisect_right(times, b) - 1
        j0, j1 = max(0, bisect.bisect_right(times, a) - 1), min(len(trace) - 1, bisect.bisect_left(times, b))
        lo = [trace[i1][k] - trace[i0][k] if i1 > i0 else 0 for k in (1, 2)]
        hi = [trace[j1][k] - trace[j0][k] for k in (1, 2)]
        out.append((lo[0], hi[0], lo[1], hi[1]))
    return out


def step_bytes(per_step: Sequence[tuple[float, float]] | None,
               ranges: Sequence[tuple[float, float, float, float]] | None = None) -> dict[str, Any] | None:
    """Medians of per-step (tx, rx) bytes, the busier direction's median (``busiest_bytes``) and, with
    `ranges` (:func:`window_bytes_range`), that direction's median ``busiest_range`` [lo, hi]."""
    if not per_step:
        return None
    tx, rx = statistics.median(x[0] for x in per_step), statistics.median(x[1] for x in per_step)
    out: dict[str, Any] = {"tx_bytes_median": tx, "rx_bytes_median": rx, "busiest_bytes": max(tx, rx),
                           "steps": len(per_step)}
    if ranges:
        k = 0 if tx >= rx else 2
        out["busiest_range"] = [statistics.median(r[k] for r in ranges), statistics.median(r[k + 1] for r in ranges)]
    return out


def timeline(trace: Sequence[tuple[float, int, int]], t0: float, t1: float, rate_bytes: float,
             dt: float = 0.05) -> list[tuple[int, int]]:
    """(tx %, rx %) of the link per ``dt`` bin over [t0, t1]."""
    if len(trace) < 2:
        return []
    times = [x[0] for x in trace]
    return [(round(100 * tx), round(100 * rx)) for tx, rx in _bins(trace, times, t0, t1, rate_bytes, dt)]


if __name__ == "__main__":  # pragma: no cover - run in a namespace by NicSampler
    _sample(sys.argv[1], sys.argv[2])
