"""`FittedPredictor`: the fitted step model (`topo.cost_fit`, docs/COST_MODEL.md §9) as a StepPredictor,
and `default_predictor`, which picks the predictor `strategy="auto"` uses when none is given.

A candidate maps onto the fitted model's description: flat (one tower holding every feature),
SPTT (identity) or SPTT + a compressing Tower Module, its towers' looked-up widths, ids and output
widths, whether they are decoded (the decoder feed), and its wire's bytes per element. The wire
term is `cost_fit.wire_time` (host NIC rate: `rate_bits`, else the topology's `inter_bw` x ranks
per host), the compute term `cost_fit.compute_time` (k ranks per core: `ranks_per_core`, else the
fitting runs'). `c_tm` is the cost per element of the Tower Module the fitting runs used (the
parameter set names it); another Tower Module's term is scaled by its FLOPs over that one's on the
same towers (`tm_cost`), so Tower Modules of equal widths are priced apart by their arithmetic.

**Error band.** `rel_error` is the parameter file's largest held-out relative step error (runs that
took no part in the fit, docs/COST_MODEL.md §9); a file without held-out runs gets
`UNVALIDATED_ERROR`. The choice is marked uncertain where it exceeds the margin to the runner-up.

**Default.** A parameter set describes the hardware it was fitted on. `default_predictor` uses the
shipped set (`fitted_default.DEFAULT_PARAMS`, fitted on the repository's emulated bench reports:
gloo over tc-shaped NICs, CPU compute) for topologies of that kind (no flop rate, a known NIC rate);
on accelerator topologies (a flop rate) it falls back to the analytic `CostModelPredictor` and says
why. A parameter file the user passes applies wherever they pass it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dmt_compile.errors import CostModelError
from dmt_compile.strategy.candidate import Candidate
from dmt_compile.strategy.predict import CostModelPredictor, Prediction, StepPredictor
from dmt_compile.strategy.tm_cost import tm_flops_params
from dmt_compile.topo.cost_fit import Candidate as FitCandidate
from dmt_compile.topo.cost_fit import compute_time, wire_time
from dmt_compile.topo.fitted_params import FittedParams
from dmt_compile.topo.topology import Topology

__all__ = ["FittedPredictor", "default_predictor", "resolve_predictor", "UNVALIDATED_ERROR"]

UNVALIDATED_ERROR = 0.25  # rel_error of a parameter set without held-out runs


@dataclass(frozen=True)
class FittedPredictor:
    """The fitted step model with one parameter set (module docstring)."""

    fitted: FittedParams
    ranks_per_core: float | None = None  # None: the fitting runs' own (1 on one rank per device)
    rate_bits: float | None = None  # host NIC rate, bits/s; None: topology inter_bw x local_size
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not self.name:
            h = self.fitted.held_out
            band = (f"held-out error ≤ {h['max_abs_error'] * 100:.0f} % on {h['runs']} runs" if h
                    else "not validated on held-out runs")
            object.__setattr__(self, "name", f"fitted step model ({self.fitted.hardware}; {band})")

    @classmethod
    def from_file(cls, path: str, **kw: Any) -> "FittedPredictor":
        return cls(FittedParams.load(path), **kw)

    @property
    def rel_error(self) -> float:
        e = self.fitted.held_out_error
        return UNVALIDATED_ERROR if e is None else e

    def _fit_candidate(self, c: Candidate) -> FitCandidate:
        kind = "flat" if c.strategy == "flat" else ("sptt" if c.tower_module == "identity" else "sptt_tm")
        outs = tuple(float(t.width_out) for t in c.towers)
        return FitCandidate(kind, tuple(float(t.width_in) for t in c.towers), tuple(float(t.ids) for t in c.towers),
                            outs if kind == "sptt_tm" else None, float(c.wire_bytes),
                            decoder=kind == "sptt_tm" and c.feed == "decoder", tm_scale=self._tm_scale(c))

    def _tm_scale(self, c: Candidate) -> float:
        """The candidate's Tower-Module FLOPs over those of the fit's Tower Module on the same towers."""
        ref = self.fitted.tower_module
        if c.tower_module in ("identity", ref) or ref is None or not all(t.tm_shape for t in c.towers):
            return 1.0
        base = sum(tm_flops_params(ref, *t.tm_shape)[0] for t in c.towers)
        return sum(t.tm_flops for t in c.towers) / base if base > 0 else 1.0

    def predict(self, candidate: Candidate, topology: Topology, batch_per_rank: int) -> Prediction:
        f = self._fit_candidate(candidate)
        if topology.num_hosts > 1 and self.rate_bits is None and topology.inter_bw is None:
            raise CostModelError(f"topology {topology} has no inter_bw (the host NIC rate the fitted model needs)",
                                 "give the topology an inter_bw, e.g. {'num_hosts': 2, 'local_size': 2, "
                                 "'inter_bw': 1.25e8}")
        wire = wire_time(f, topology, batch_per_rank, self.fitted.params, self.rate_bits)
        compute = compute_time(f, batch_per_rank, self.fitted.params, self.ranks_per_core or self.fitted.ranks_per_core)
        n = topology.num_hosts
        per_sample = sum(8 * i + 2 * f.wire_bytes * o for i, o in zip(f.ids_per_sample, f.out_widths))
        cross = (n - 1) / n * batch_per_rank * per_sample
        return Prediction(compute + wire, self.rel_error, cross, compute, wire, (("compute", compute), ("wire", wire)))


def default_predictor(topology: Topology) -> tuple[StepPredictor, str | None]:
    """(the predictor `strategy="auto"` uses on `topology` when none is given, a note saying why)."""
    from dmt_compile.strategy.fitted_default import DEFAULT_PARAMS

    if DEFAULT_PARAMS is None:
        return CostModelPredictor(), "no fitted parameter set is shipped: priced by the analytic cost model"
    fitted = FittedParams.from_dict(DEFAULT_PARAMS, "the shipped parameter set")
    if topology.flop_rate is None and (topology.inter_bw is not None or topology.num_hosts == 1):
        return FittedPredictor(fitted), None
    if topology.flop_rate is None:
        return CostModelPredictor(), None  # no link numbers: the analytic model's typed error names them
    return CostModelPredictor(), (f"priced by the analytic cost model: the shipped fitted parameters describe "
                                  f"{fitted.hardware}, not {topology}; fit on yours (`dmt-compile cost --fit "
                                  "A.json --held-out B.json --save P.json`) and pass them (--cost-params P.json, "
                                  "predictor='P.json')")


def resolve_predictor(predictor: StepPredictor | str | None, topology: Topology) -> tuple[StepPredictor, str | None]:
    """A StepPredictor from what the user gave (None: the default; a str: a parameter file's path)."""
    if predictor is None:
        return default_predictor(topology)
    if isinstance(predictor, str):
        return FittedPredictor.from_file(predictor), None
    if not isinstance(predictor, StepPredictor):
        raise CostModelError(f"predictor {predictor!r} has no name and predict(candidate, topology, batch)",
                             "pass a StepPredictor, a fitted parameter file's path, or leave predictor out")
    return predictor, None
