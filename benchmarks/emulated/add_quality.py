"""Add the quality columns to a bench report after the timing: ``python -m benchmarks.emulated.add_quality R.json``.

Timing needs an idle box; quality training does not (it is single-process and untimed). So a report
timed without ``--quality`` can get its ΔAUC / Δlog-loss later, on any load, from exactly the
configurations it timed (strategy, compression, wire dtype; the Tower Module, feed and host layout
of its ``config``). The result is what ``dmt-compile bench --quality`` would have written: the same
columns, the best baseline of equal quality and the speedups against it recomputed. A report with
a ``hosts`` sweep is refused (its configurations differ per point; run ``--quality`` with it).

    python -m benchmarks.emulated.add_quality benchmarks/results/evidence/ws08_hier.json --out ws08_hier_q.json \
        --cache quality_cache.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

from benchmarks.emulated.quality import QualityConfig, add_quality
from dmt_compile.errors import InputError

__all__ = ["config_of", "main"]


def config_of(report: dict[str, Any]) -> SimpleNamespace:
    """What the quality training reads from a report: host layout, Tower Module, feed."""
    cfg = report.get("config") or {}
    if any("hosts" in (p.get("point") or {}) for p in report.get("sweep", [])):
        raise InputError("this report sweeps host layouts: its configurations differ per point",
                         "rerun that sweep with `dmt-compile bench --quality`")
    try:
        hosts, local = (int(x) for x in cfg["emulate"].split("x"))
        return SimpleNamespace(num_hosts=hosts, local_size=local, tower_module=cfg["tower_module"],
                               feed=cfg["feed"])
    except (KeyError, ValueError, AttributeError) as exc:
        raise InputError(f"the report has no usable config ({exc!r})",
                         "pass a JSON written by `dmt-compile bench --format json`") from None


def _load_cache(path: str | None) -> dict[str, list]:
    if not path:
        return {}
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}


def _save_cache(path: str, cache: dict[str, list]) -> None:
    with open(path + ".tmp", "w") as fh:
        json.dump(cache, fh, indent=1)
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.emulated.add_quality", description=__doc__.split("\n")[0])
    ap.add_argument("report", help="a JSON report of `dmt-compile bench --format json`")
    ap.add_argument("--out", help="where to write the report with quality (default: stdout)")
    ap.add_argument("--samples", type=int, default=QualityConfig.samples, help="synthetic samples per seed")
    ap.add_argument("--runs", help="comma list of run keys to train (e.g. flat+bf16,sptt_tm@4); default: every "
                                   "run of the report; the others are marked not measured")
    ap.add_argument("--datasets", default="synthetic,adult", help="quality data sets to train on (comma list)")
    ap.add_argument("--cache", help="JSON file of trained results by function and seed, read and extended, so "
                                    "several reports train flat and each shared configuration once")
    args = ap.parse_args(argv)
    with open(args.report) as fh:
        report = json.load(fh)
    log = lambda msg: print(f"[quality] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    cache = _load_cache(args.cache)
    only = {k.strip() for k in args.runs.split(",")} if args.runs else None
    add_quality(report, config_of(report), log, QualityConfig(samples=args.samples), cache,
                on_trained=(lambda c: _save_cache(args.cache, c)) if args.cache else None, only=only,
                datasets=tuple(d.strip() for d in args.datasets.split(",") if d.strip()))
    report["quality"]["added_after_timing"] = True
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
