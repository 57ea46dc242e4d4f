"""Bench JSON reports -> the runs :mod:`dmt_compile.topo.cost_fit` fits on and predicts.

``dmt-compile cost --fit A.json,B.json --held-out C.json`` fits the step model's free parameters on
the rows of A and B (every strategy, every sweep point) and prints each row of C predicted from its
description alone, with the relative error; CPU-bound points are marked (the model has no term for
a saturated box). Fitting and held-out reports must not share a run (a JSON file in both is refused).
The fit also reads two micro-benchmarks of the box that are no bench run (:func:`micro_benchmarks`:
the step's CPU at three batch sizes, gloo's loopback reduce-scatter rate), for what runs at one
batch size and without TWRW rows cannot fix.
``--save P.json`` writes the parameters with that evidence (:class:`dmt_compile.topo.fitted_params.FittedParams`),
the file ``strategy="auto"`` prices candidates with (``plan --strategy auto --cost-params P.json``).
"""
from __future__ import annotations

import json
import os
from typing import Any, TextIO

from dmt_compile.errors import InputError

__all__ = ["load_runs", "run_fit", "fit_params", "HARDWARE", "micro_benchmarks"]

HARDWARE = "emulated bench: gloo over tc-shaped veth NICs, CPU compute (dmt-compile bench)"
#: micro-benchmarks of this box that are no bench run (docs/COST_MODEL.md section 9): the step's CPU
#: at three batch sizes (`profile_step`) and gloo's loopback reduce-scatter / all-gather rate
MICRO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results", "evidence", "micro")


def micro_benchmarks(folder: str = MICRO):
    """(BatchShape of the step's CPU in the batch, loopback bytes/s) from the micro-benchmark JSON in
    `folder` (``cpu_batch_<b>.json``: `profile_step --json`, every run's median CPU seconds per step
    averaged over runs after scaling each to its batch-1024 value; ``loopback_rate.json``: the median
    rate); (None, 0.0) where a file is missing."""
    import glob
    import statistics

    from dmt_compile.topo.cost_fit import BatchShape

    points: dict[str, list[tuple[float, float]]] = {}
    for path in glob.glob(os.path.join(folder, "cpu_batch_*.json")):
        with open(path) as f:
            doc = json.load(f)
        for run, r in doc["runs"].items():
            points.setdefault(run, []).append((float(doc["args"]["per_rank_batch"]), statistics.median(r["cpu_s_all_ranks"])))
    shapes = [BatchShape.from_points(p) for p in points.values() if len({b for b, _ in p}) >= 3]
    shape = None
    if shapes:  # each run's curve normalised to 1 s at batch 1024, then averaged term by term
        norm = [(s.fixed + s.per_sample * 1024 + s.per_sample_sq * 1024 ** 2) for s in shapes]
        shape = BatchShape(*(statistics.fmean(getattr(s, k) / n for s, n in zip(shapes, norm))
                             for k in ("fixed", "per_sample", "per_sample_sq")))
    loop = 0.0
    if os.path.exists(os.path.join(folder, "loopback_rate.json")):
        with open(os.path.join(folder, "loopback_rate.json")) as f:
            loop = float(json.load(f)["loopback_bytes_per_s_median"])
    return shape, loop


def load_runs(paths: list[str]) -> list[dict[str, Any]]:
    """[{"row", "config", "point"}] of every result row of the bench reports at `paths`."""
    runs = []
    for path in paths:
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read bench report {path!r}: {exc}", "give a `bench --format json` output") from None
        points = report.get("sweep") or [{"point": None, "results": report.get("results", []),
                                          "config": report.get("config", {})}]
        for p in points:
            for row in p["results"]:
                if row.get("strategy") == "auto":  # a candidate timed again (or the same samples): not a new run
                    continue
                runs.append({"row": row, "config": p.get("config") or report.get("config", {}), "point": p.get("point")})
    return runs


def fit_params(fit_paths: list[str], held_paths: list[str]):
    """(FittedParams of the fit with its held-out summary, the per-row held-out errors)."""
    import statistics

    from dmt_compile.topo.cost_fit import _setting, fit, held_out_errors
    from dmt_compile.topo.fitted_params import FittedParams, held_out_summary

    shared = sorted(set(fit_paths) & set(held_paths))
    if shared:
        raise InputError(f"{shared} is both fitted on and held out", "hold out reports that took no part in the fit")
    runs = load_runs(fit_paths)
    shape, loopback = micro_benchmarks()
    params = fit(runs, shape, loopback)
    errs = held_out_errors(params, load_runs(held_paths)) if held_paths else []
    k = statistics.median(_setting(r)[2] for r in runs if r["row"].get("non_wire_s") is not None)
    tms = {r["config"].get("tower_module") for r in runs if r["row"].get("strategy") == "sptt_tm"}
    tm = tms.pop() if len(tms) == 1 else None
    return FittedParams(params, held_out_summary(errs), tuple(fit_paths), tuple(held_paths), HARDWARE, k,
                        tower_module=tm), errs


def run_fit(fit_paths: list[str], held_paths: list[str], out: TextIO, save: str | None = None) -> int:
    fitted, errs = fit_params(fit_paths, held_paths)
    out.write("fitted: " + json.dumps(fitted.params.as_dict()) + "\n")
    for e in errs:
        out.write(f"{e['run']:<22} {str(e['point'] or ''):<22} predicted {e['predicted_s'] * 1e3:8.1f} ms  measured "
                  f"{e['measured_s'] * 1e3:8.1f} ms  error {e['error'] * 100:+6.1f}%"
                  + ("  (CPU-bound)" if e["cpu_bound"] else "") + "\n")
    h = fitted.held_out
    if h:
        out.write(f"held-out |error| of flat, sptt, sptt_tm where not CPU-bound (the band strategy auto uses): "
                  f"max {h['max_abs_error'] * 100:.1f}%, mean {h['mean_abs_error'] * 100:.1f}% over {h['runs']} runs\n")
    ok = [abs(e["error"]) for e in errs if not e["cpu_bound"]]
    if ok:
        out.write(f"held-out |error| where not CPU-bound: max {max(ok) * 100:.1f}%, mean {sum(ok) / len(ok) * 100:.1f}%\n")
    if save:
        fitted.save(save)
        out.write(f"saved the parameters to {save}" + ("" if h else " (not validated: give --held-out reports)") + "\n")
    return 0


DEFAULT_MODULE = "dmt_compile/strategy/fitted_default.py"


def write_default(fit_paths: list[str], held_paths: list[str], module: str = DEFAULT_MODULE) -> str:
    """Fit, validate on the held-out reports, and write the shipped parameter set into `module`
    (`dmt_compile.strategy.fitted_default`); returns the summary line."""
    import pprint

    fitted, _ = fit_params(fit_paths, held_paths)
    with open(module) as f:
        head = f.read().split("DEFAULT_PARAMS =")[0]
    with open(module, "w") as f:
        f.write(head + "DEFAULT_PARAMS = " + pprint.pformat(fitted.to_dict(), width=110, sort_dicts=True) + "\n")
    h = fitted.held_out
    return (f"wrote {module}: fitted on {len(fit_paths)} report(s), "
            + (f"held-out |error| max {h['max_abs_error'] * 100:.1f}% over {h['runs']} runs" if h else "not validated"))


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="fit the step model on bench reports; write the shipped default set")
    p.add_argument("--fit", required=True, help="comma-separated bench reports to fit on")
    p.add_argument("--held-out", default="", help="comma-separated bench reports to validate on")
    p.add_argument("--write-default", default=DEFAULT_MODULE, help=f"module to write (default {DEFAULT_MODULE})")
    args = p.parse_args(argv)
    print(write_default([x for x in args.fit.split(",") if x], [x for x in args.held_out.split(",") if x],
                        args.write_default))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
