"""`StepPredictor`: the narrow interface the search prices candidates through, and today's adapter.

A predictor maps (candidate, topology, per-rank batch) to a `Prediction`: seconds per training
step, its relative uncertainty (the half-width of the band, as a fraction), bytes one rank sends
across hosts per step, and the compute and communication seconds. Any cost model plugs in by
implementing `predict` (one adapter); `CostModelPredictor` adapts the analytic α-β model of
`dmt_compile.topo` (docs/COST_MODEL.md):

* communication: `topo.cost_model.evaluate` of `flat`, `sptt` or `sptt_tm` on the candidate's
  tower loads (the busiest host sets every per-host quantity), at the wire dtype's bytes per element;
* compute (when the topology has a flop rate): the dense part from the model's counted forward
  FLOPs at `flop_efficiency` x the peak plus `op_time` per operator (eager kernel launches), the
  Tower Modules' FLOPs, the decoders, the data-parallel all-reduce (docs/COST_MODEL.md §8.3's
  recipe). Hierarchical feed's smaller global interaction is not credited (conservative).
* uncertainty: `rel_error` (default 0.25: the model's step error on the emulated bench ranged
  -9 … +26 %, docs/BENCHMARKS.md); a fitted model reports its own held-out band.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from dmt_compile.strategy.candidate import Candidate
from dmt_compile.topo.cost_model import COMM_TERMS, COMPUTE_TERMS, Workload, evaluate
from dmt_compile.topo.cost_symbols import CostParams
from dmt_compile.topo.topology import Topology

__all__ = ["Prediction", "StepPredictor", "CostModelPredictor"]

TM_OPS = 12  # operators of one Tower-Module core, fwd
DECODER_OPS = 4  # linear, split, reshapes


@dataclass(frozen=True)
class Prediction:
    """One candidate's predicted step on one topology and batch."""

    seconds: float  # per training step (what the predictor covers: see its docs)
    rel_error: float  # relative half-width of the band: the true step is in seconds x (1 ± rel_error)
    cross_host_bytes: float  # bytes one (busiest) rank sends across hosts per step
    compute_s: float
    comm_s: float
    terms: tuple[tuple[str, float], ...] = field(default=())  # the predictor's own breakdown (seconds)


@runtime_checkable
class StepPredictor(Protocol):
    """Anything with a `name` and `predict(candidate, topology, batch_per_rank) -> Prediction`."""

    name: str

    def predict(self, candidate: Candidate, topology: Topology, batch_per_rank: int) -> Prediction: ...


@dataclass(frozen=True)
class CostModelPredictor:
    """The analytic cost model of `dmt_compile.topo` as a StepPredictor (module docstring)."""

    params: CostParams = field(default_factory=CostParams)
    flop_efficiency: float = 0.2  # achieved / peak FLOP rate for these GEMM sizes (~200 TFLOP/s on an H100)
    op_time: float = 4e-6  # s per operator (an eager kernel launch)
    rel_error: float = 0.25
    name: str = "cost model (analytic, docs/COST_MODEL.md)"

    def _compute(self, c: Candidate, topology: Topology, b: int) -> tuple[dict[str, float], float | None]:
        rate = self.params.flop_rate or (topology.flop_rate * self.flop_efficiency if topology.flop_rate else None)
        if rate is None:
            return {}, None
        k = 1 + self.params.bwd_multiplier  # fwd + bwd
        towers = max(1, len(c.towers)) if c.feed == "decoder" else 0
        out = {"t_d": k * c.dense_flops / rate + k * c.dense_ops * self.op_time / b,
               "t_x": k * c.decoder_flops / rate + k * DECODER_OPS * towers * self.op_time / b,
               "M_d": c.dense_params + c.decoder_params}
        if c.strategy == "sptt" and c.tower_module != "identity":
            per_host = max(sum(1 for t in c.towers if t.host == h) for h in {t.host for t in c.towers})
            out["t_t"] = k * TM_OPS * per_host * self.op_time / (topology.num_hosts * b)
        return out, rate

    def _workload(self, c: Candidate, topology: Topology, b: int, compute: dict[str, float]) -> tuple[str, Workload]:
        total = [sum(getattr(t, f) for t in c.towers) for f in ("width_in", "ids")]
        if c.strategy == "flat":
            n = topology.num_hosts
            return "flat", Workload(b, total[0], total[1], total[0], total[0] / n, total[1] / n, total[0] / n,
                                    total[0] / n, bytes_per_element=c.wire_bytes, **compute)
        hosts: dict[int, list[float]] = {}
        for t in c.towers:
            row = hosts.setdefault(t.host, [0.0] * 5)
            for i, v in enumerate((t.width_in, t.ids, t.width_out, t.tm_flops, t.tm_params)):
                row[i] += v
        top = [max(r[i] for r in hosts.values()) for i in range(5)]
        tm = c.tower_module != "identity"
        strategy = "sptt_tm" if tm else "sptt"
        if not tm or "t_d" not in compute:
            top[3] = 0.0
        return strategy, Workload(b, total[0], total[1], total[0], top[0], top[1], top[0], top[2],
                                  top[3], top[4] if tm else 0.0, bytes_per_element=c.wire_bytes, **compute)

    def predict(self, candidate: Candidate, topology: Topology, batch_per_rank: int) -> Prediction:
        compute, rate = self._compute(candidate, topology, batch_per_rank)
        strategy, w = self._workload(candidate, topology, batch_per_rank, compute)
        params = self.params if rate is None else CostParams(**{**vars(self.params), "flop_rate": rate})
        summary = evaluate(topology, strategy, w, params)
        terms = summary.summary()
        return Prediction(terms["total"], self.rel_error, summary.bytes["cross_host"],
                          sum(terms[t] for t in COMPUTE_TERMS), sum(terms[t] for t in COMM_TERMS),
                          tuple((k, v) for k, v in terms.items() if v and k not in ("fwd", "bwd", "total")))
