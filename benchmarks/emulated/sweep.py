"""Sweeps of the emulated bench: wire share, batch, host layout; and the crossover share per strategy.

``--sweep wire-share=0.1,0.2,...,0.9`` reruns :func:`.runner.run_benchmark` with the NIC rate
calibrated to each target measured share; ``batch=256,...,4096`` varies the per-rank batch at the
given rate; ``hosts=2x2,4x1,4x2`` the emulated layout. Each point keeps flat's *measured* exchange
share (the x axis of the picture) and its rows; a point where any run's CPU was busy over
:data:`~.analysis.BOX_BOUND` of the step is marked ``cpu_bound`` (the box, not the network, set it).

The load gate is checked once, before the first point (the sweep's own ranks raise the load).
**Crossover**: per run, the flat measured share at which its speedup (median of paired ratios)
crosses 1 against flat and against the best baseline, interpolated linearly between the two
neighbouring points (None when it never crosses inside the swept range, with the side it stays on).
A point the box cannot produce (e.g. a share below what flat's loopback and CPU already take at an
unthrottled NIC) is listed in ``unreachable`` with the reason, and the sweep goes on.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable

from benchmarks.emulated.netns import EmulationError
from benchmarks.emulated.stats import check_load

__all__ = ["parse_sweep", "run_sweep", "crossover", "SWEEP_KINDS"]

SWEEP_KINDS = ("wire-share", "batch", "hosts")
_POINT_KEY = {"wire-share": "wire_share", "batch": "batch", "hosts": "hosts"}


def _value(kind: str, text: str) -> Any:
    if kind == "wire-share":
        v = float(text)
        if not 0 < v < 1:
            raise ValueError(text)
        return v
    if kind == "batch":
        v = int(text)
        if v < 1:
            raise ValueError(text)
        return v
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(text)
    return text


def parse_sweep(text: str) -> tuple[str, list[Any]]:
    """``"wire-share=0.1,0.5"`` -> ("wire-share", [0.1, 0.5]); EmulationError naming the problem."""
    kind, _, values = text.partition("=")
    kind = kind.strip()
    if kind not in SWEEP_KINDS or not values.strip():
        raise EmulationError(f"--sweep {text!r} is not KIND=V1,V2,...", "KIND is one of " + ", ".join(SWEEP_KINDS))
    try:
        return kind, [_value(kind, v.strip()) for v in values.split(",") if v.strip()]
    except ValueError as exc:
        raise EmulationError(f"--sweep {kind}: bad value {exc}",
                             "wire-share in (0, 1), batch a positive integer, hosts like 2x2") from None


def _config_at(cfg: Any, kind: str, v: Any) -> Any:
    if kind == "wire-share":
        return replace(cfg, wire_share=v, inter_bw_bits=None, force=True)
    if kind == "batch":
        return replace(cfg, per_rank_batch=v, force=True)
    n, l_ = (int(x) for x in v.split("x"))
    return replace(cfg, num_hosts=n, local_size=l_, force=True)


def run_sweep(cfg: Any, sweep: tuple[str, list[Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """Run the bench at every point; the report of the sweep (``sweep``, ``crossover``, loads)."""
    from benchmarks.emulated.runner import run_benchmark

    kind, values = sweep
    gate = check_load(cfg.force)
    points, last, unreachable = [], None, []
    for v in values:
        log(f"sweep {kind}={v}")
        try:
            last = run_benchmark(_config_at(cfg, kind, v), log=log)
        except EmulationError as exc:  # e.g. a share the NIC cannot produce on this box: say so, go on
            log(f"sweep {kind}={v}: not run: {str(exc).splitlines()[0]}")
            unreachable.append({"point": {_POINT_KEY[kind]: v}, "reason": str(exc)})
            continue
        points.append({"point": {_POINT_KEY[kind]: v},
                       "flat_measured_exchange_share": last["flat_measured_exchange_share"],
                       "cpu_bound": any(r.get("box_bound") for r in last["results"]),
                       "results": last["results"], "config": last["config"], "skipped": last["skipped"],
                       "best_baseline": last["best_baseline"], "load_before": last["load_before"],
                       "load_after": last["load_after"], "launches": last["launches"]})
    if not points:
        raise EmulationError(f"no point of the {kind} sweep could run: " + unreachable[0]["reason"].splitlines()[0],
                             "choose points this box can produce (the first error's fix says how)")
    return {"sweep_kind": kind, "sweep": points, "unreachable": unreachable, "crossover": crossover(points),
            "load_gate": gate,
            "loaded_box": bool(gate["forced"]), "load_before": points[0]["load_before"] if points else [],
            "load_after": points[-1]["load_after"] if points else [],
            "launches": sum(p["launches"] for p in points), "teardown": last["teardown"] if last else {"clean": True},
            "config": last["config"] if last else {}, "results": []}


def _cross(xs: list[float], ys: list[float]) -> dict[str, Any]:
    """Where ys (speedups) crosses 1 along xs, interpolated; or which side it stays on."""
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if (y0 - 1) * (y1 - 1) <= 0 and y0 != y1:
            return {"share": x0 + (1 - y0) * (x1 - x0) / (y1 - y0), "side": "crosses"}
    if not ys:
        return {"share": None, "side": "no points"}
    return {"share": None, "side": "always faster" if all(y > 1 for y in ys) else "never faster"}


def crossover(points: list[dict[str, Any]]) -> dict[str, Any]:
    """Per run key: crossover share vs flat and vs the best baseline (module docstring)."""
    out: dict[str, Any] = {}
    keys = sorted({r["run"] for p in points for r in p["results"]} - {"flat"})
    for key in keys:
        pts = []
        for p in points:
            r = next((r for r in p["results"] if r["run"] == key), None)
            x = p["flat_measured_exchange_share"]
            if r is not None and x is not None:
                pts.append((x, (r.get("speedup_vs_flat") or {}).get("median"),
                            (r.get("speedup_vs_best_baseline") or {}).get("median")))
        pts.sort()
        out[key] = {name: _cross([x for x, *y in pts if y[i] is not None], [y[i] for x, *y in pts if y[i] is not None])
                    for i, name in enumerate(("vs_flat", "vs_best_baseline"))}
    return out
