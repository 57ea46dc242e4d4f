"""Bench JSON reports -> the runs :mod:`dmt_compile.topo.cost_fit` fits on and predicts.

``dmt-compile cost --fit A.json,B.json --held-out C.json`` fits the step model's free parameters on
the rows of A and B (every strategy, every sweep point) and prints each row of C predicted from its
description alone, with the relative error; CPU-bound points are marked (the model has no term for
a saturated box). Fitting and held-out reports must not share a run (a JSON file in both is refused).
"""
from __future__ import annotations

import json
from typing import Any, TextIO

from dmt_compile.errors import InputError

__all__ = ["load_runs", "run_fit"]


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
                runs.append({"row": row, "config": p.get("config") or report.get("config", {}), "point": p.get("point")})
    return runs


def run_fit(fit_paths: list[str], held_paths: list[str], out: TextIO) -> int:
    from dmt_compile.topo.cost_fit import fit, held_out_errors

    shared = sorted(set(fit_paths) & set(held_paths))
    if shared:
        raise InputError(f"{shared} is both fitted on and held out", "hold out reports that took no part in the fit")
    params = fit(load_runs(fit_paths))
    out.write("fitted: " + json.dumps(params.as_dict()) + "\n")
    errs = held_out_errors(params, load_runs(held_paths)) if held_paths else []
    for e in errs:
        out.write(f"{e['run']:<22} {str(e['point'] or ''):<22} predicted {e['predicted_s'] * 1e3:8.1f} ms  measured "
                  f"{e['measured_s'] * 1e3:8.1f} ms  error {e['error'] * 100:+6.1f}%"
                  + ("  (CPU-bound)" if e["cpu_bound"] else "") + "\n")
    ok = [abs(e["error"]) for e in errs if not e["cpu_bound"]]
    if ok:
        out.write(f"held-out |error| where not CPU-bound: max {max(ok) * 100:.1f}%, mean {sum(ok) / len(ok) * 100:.1f}%\n")
    return 0
