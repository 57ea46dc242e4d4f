"""A fitted parameter set of the step model (`cost_fit`) with its evidence: what it was fitted on, how
far off it was on runs that took no part in the fit, and the hardware it describes.

`dmt-compile cost --fit A.json --held-out C.json --save P.json` writes one; `transform(...,
strategy="auto", predictor=FittedPredictor.from_file("P.json"))` and `plan --strategy auto
--cost-params P.json` read it. The file is JSON with schema :data:`SCHEMA`:

    {"schema": ..., "params": {alpha, gap, n_half, eta, kappa, duplex, loopback, batch_knee, c_*, "fitted": [...]},
     "held_out": {"runs": n, "max_abs_error": e, "mean_abs_error": m} | null,
     "fitted_on": [paths], "held_out_on": [paths], "hardware": "...", "ranks_per_core": k}
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_fit import COMPUTE, MEASURED, NETWORK, StepParams

__all__ = ["FittedParams", "SCHEMA", "held_out_summary"]

SCHEMA = "dmt_compile.cost_fit.params/1"


#: the strategies a parameter set prices for `strategy="auto"` (the held-out band is taken over them;
#: TorchRec's baselines are predicted as flat, but their row-wise reduce-scatter is not modelled)
CANDIDATE_STRATEGIES = ("flat", "sptt", "sptt_tm")


def held_out_summary(errors: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """{"runs", "max_abs_error", "mean_abs_error", "cpu_bound_left_out", "max_abs_error_cpu_bound",
    "other_strategies_left_out"} of `cost_fit.held_out_errors`: the band is taken where the model
    applies, on the candidates' strategies (CPU-bound rows left out: it has no term for a saturated
    box; their largest error is kept beside it); None without such rows."""
    mine = [e for e in errors if e.get("strategy", "flat") in CANDIDATE_STRATEGIES]
    ok = [abs(e["error"]) for e in mine if not e.get("cpu_bound")]
    bound = [abs(e["error"]) for e in mine if e.get("cpu_bound")]
    if not ok:
        return None
    return {"runs": len(ok), "max_abs_error": max(ok), "mean_abs_error": sum(ok) / len(ok),
            "cpu_bound_left_out": len(bound), "max_abs_error_cpu_bound": max(bound) if bound else None,
            "other_strategies_left_out": len(errors) - len(mine)}


@dataclass(frozen=True)
class FittedParams:
    """`StepParams` plus the evidence behind them (module docstring)."""

    params: StepParams
    held_out: dict[str, Any] | None = None
    fitted_on: tuple[str, ...] = ()
    held_out_on: tuple[str, ...] = ()
    hardware: str = "unknown"
    ranks_per_core: float = 1.0  # of the fitting runs (ranks sharing one core or device)
    notes: tuple[str, ...] = field(default=())
    tower_module: str | None = None  # the compressing Tower Module of the fitting runs (c_tm is its cost)

    @property
    def held_out_error(self) -> float | None:
        """The largest relative step error on held-out runs (None: not validated)."""
        return None if not self.held_out else float(self.held_out["max_abs_error"])

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "params": self.params.as_dict(), "held_out": self.held_out,
                "fitted_on": list(self.fitted_on), "held_out_on": list(self.held_out_on), "hardware": self.hardware,
                "ranks_per_core": self.ranks_per_core, "notes": list(self.notes), "tower_module": self.tower_module}

    def save(self, path: str) -> None:
        try:
            with open(path, "w") as f:
                json.dump(self.to_dict(), f, indent=2, sort_keys=True)
                f.write("\n")
        except OSError as exc:
            raise CostModelError(f"cannot write the fitted parameters to {path!r}: {exc.strerror}",
                                 "give --save a writable path") from None

    @classmethod
    def from_dict(cls, doc: Any, source: str = "the parameters") -> "FittedParams":
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("params"), dict):
            raise CostModelError(f"{source} is not a fitted parameter file (schema {SCHEMA})",
                                 "write one with `dmt-compile cost --fit A.json --held-out B.json --save P.json`")
        raw = doc["params"]
        values = {}
        for k in NETWORK + MEASURED + COMPUTE:
            v = raw.get(k, getattr(StepParams, k) if k in ("duplex", "c_runtime") + MEASURED else None)  # older sets lack them
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
                raise CostModelError(f"{source}: parameter {k!r} is {v!r}, not a non-negative number",
                                     "refit with `dmt-compile cost --fit ... --save P.json`")
            values[k] = float(v)
        if values["eta"] <= 0:
            raise CostModelError(f"{source}: eta must be positive, got {values['eta']}", "refit the parameters")
        fitted = frozenset(k for k in raw.get("fitted", []) if k in NETWORK + COMPUTE)
        held = doc.get("held_out")
        if held is not None and not isinstance(held.get("max_abs_error") if isinstance(held, dict) else None, (int, float)):
            raise CostModelError(f"{source}: held_out has no max_abs_error", "refit with --held-out reports")
        k = doc.get("ranks_per_core", 1.0)
        return cls(StepParams(**values, fitted=fitted), held, tuple(doc.get("fitted_on", ())),
                   tuple(doc.get("held_out_on", ())), str(doc.get("hardware", "unknown")),
                   float(k) if isinstance(k, (int, float)) and k > 0 else 1.0, tuple(doc.get("notes", ())),
                   doc.get("tower_module") if isinstance(doc.get("tower_module"), str) else None)

    @classmethod
    def load(cls, path: str) -> "FittedParams":
        try:
            with open(path) as f:
                doc = json.load(f)
        except OSError as exc:
            raise CostModelError(f"cannot read the fitted parameters {path!r}: {exc.strerror}",
                                 "give the file `dmt-compile cost --fit ... --save P.json` wrote") from None
        except ValueError as exc:
            raise CostModelError(f"{path!r} is not JSON: {exc}", "give the file `cost --fit ... --save` wrote") from None
        return cls.from_dict(doc, repr(path))
