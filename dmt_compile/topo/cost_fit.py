"""A fitted, predictive step-time model: free parameters fitted on one set of runs, judged on another.

:func:`predict_step` prices one training step of a *candidate* (a strategy with its towers) on a
topology at a per-rank batch:

    step = compute + wire
    compute = k * (c_fixed + b * (c_sample + c_element * D_in + c_tm * D_tm + c_interaction * D_out
                                  + c_runtime * D_run) * (1 + b / b_knee))
    wire    = E * alpha + E * m * g + X / (eta * B) * (1 + h) * (1 + n_half / s) * (1 + kappa * log2(fan_in))
              + Y / B_loop

with ``k`` ranks per core (or device), ``D_in`` the embedding elements per sample looked up,
``D_tm`` those entering a compressing Tower Module (0 otherwise; twice ``D_in`` with the decoder
feed, whose decoders are the Tower Modules' matrices run backwards), ``D_out`` what the towers hand
on to the interaction (``D_in`` again with decoders, which restore the original widths), ``D_run``
the elements this project's runtime packs and unpacks around its exchanges (``D_in``; 0 for
TorchRec's rows, whose fused path does its own); ``E`` = 5 cross-host exchanges per step (id
counts, lengths, values; embeddings forward and their gradients backward), ``m`` messages per rank per exchange (flat: every rank of every other
host, ``(N-1) L``; SPTT: one peer per other host, ``N-1``), ``X`` the busiest host NIC's bytes per
direction (``L (N-1)/N b sum_t (8 I_t + 2 w o_t r)``, ``w`` the wire's bytes per element, ``r`` = 1
but the world size for TorchRec's row-wise reduce-scatter, :func:`output_fanout`), ``B`` the
host NIC rate, ``s = X / (L m E)`` the mean message size and ``fan_in`` the senders into one NIC.
``h`` (``duplex``) is the share of a TorchRec exchange that runs one direction at a time (gloo's
``all_to_all_single`` under TorchRec; 0 for this project's runtime, whose exchanges are full
duplex), ``Y`` the intra-host bytes a rank moves that no fitted time contains (TorchRec TWRW's
reduce-scatter of pooled partial sums and the all-gather of their gradients, :func:`loopback_bytes`)
and ``B_loop`` (``loopback``) their loopback rate. ``b_knee`` (``batch_knee``; 0 = none) is the
batch at which the per-sample compute has doubled (cache pressure): with ``c_fixed`` it is the
shape of the compute in the batch, which runs at one batch size cannot fix (:class:`BatchShape`).

The **free parameters** (:class:`StepParams`): ``alpha, g, n_half, eta, kappa, duplex`` and the
compute terms ``c_*``; ``loopback`` and the batch shape come from micro-benchmarks (:func:`fit`).
:func:`fit` fits the compute terms by non-negative least squares on the runs' own non-wire times
``C_s`` (measured unthrottled, see the bench's ``bound`` module) and the network terms by a grid
search on the step times, both on the *fitting* runs only; :func:`held_out_errors` then predicts
runs that took no part in the fit (other shares, batches, host counts) from their description
alone. Network parameters the runs cannot constrain (``g, n_half, kappa`` on one host layout;
``duplex`` without TorchRec rows) are held at 0 and listed as unfitted; :func:`predict_step`
returns a band over their plausible ranges (:data:`RANGES`).
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from dmt_compile.errors import CostModelError
from dmt_compile.topo.spec import as_topology

__all__ = ["Candidate", "StepParams", "RANGES", "predict_step", "speedup_band", "fit", "held_out_errors", "candidate_from_row",
           "EXCHANGES", "output_fanout", "loopback_bytes", "BatchShape"]

EXCHANGES = 5
NETWORK = ("alpha", "gap", "n_half", "eta", "kappa", "duplex")
COMPUTE = ("c_fixed", "c_sample", "c_element", "c_tm", "c_interaction", "c_runtime")
#: measured by micro-benchmarks, not by the grid (``loopback`` bytes/s; ``batch_knee`` samples, 0 = none)
MEASURED = ("loopback", "batch_knee")
#: plausible range of each network parameter, for the band over those not fitted
RANGES = {"alpha": (10e-6, 500e-6), "gap": (0.0, 20e-6), "n_half": (16 * 1024, 256 * 1024), "eta": (0.7, 0.97),
          "kappa": (0.0, 0.25), "duplex": (0.0, 1.0)}


@dataclass(frozen=True)
class Candidate:
    """What :func:`predict_step` prices: a strategy and its towers (elements / ids per sample).

    ``strategy``: ``flat`` (and TorchRec's TW/RW/TWRW: one global exchange; RW's output bytes
    times the world size, :func:`output_fanout`), ``sptt``
    or ``sptt_tm``. Flat has one "tower" holding every feature. ``tower_out_widths`` None = identity.
    ``decoder``: the towers' outputs are decoded back to their input widths (the decoder feed).
    ``tm_scale``: the Tower Module's cost relative to the one the parameters were fitted on (FLOPs
    on the same tower shapes; 1 for that one).
    """

    strategy: str
    tower_in_widths: tuple[float, ...]
    ids_per_sample: tuple[float, ...]
    tower_out_widths: tuple[float, ...] | None = None
    wire_bytes: float = 4.0
    decoder: bool = False
    tm_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.strategy not in ("flat", "sptt", "sptt_tm") and not self.strategy.startswith("torchrec_"):
            raise CostModelError(f"unknown strategy {self.strategy!r}", "use flat, sptt, sptt_tm or torchrec_*")
        if len(self.ids_per_sample) != len(self.tower_in_widths):
            raise CostModelError("ids_per_sample and tower_in_widths differ in length", "give one entry per tower")

    @property
    def flat_like(self) -> bool:
        return self.strategy == "flat" or self.strategy.startswith("torchrec_")

    @property
    def out_widths(self) -> tuple[float, ...]:
        return self.tower_out_widths or self.tower_in_widths


@dataclass(frozen=True)
class StepParams:
    """The free parameters (seconds, bytes); ``fitted`` names those a fit determined."""

    alpha: float = 100e-6
    gap: float = 5e-6
    n_half: float = 64 * 1024
    eta: float = 0.9
    kappa: float = 0.0
    duplex: float = 0.0
    loopback: float = 0.0
    batch_knee: float = 0.0
    c_fixed: float = 0.0
    c_sample: float = 0.0
    c_element: float = 0.0
    c_tm: float = 0.0
    c_interaction: float = 0.0
    c_runtime: float = 0.0
    fitted: frozenset = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, Any]:
        return {**{k: getattr(self, k) for k in NETWORK + MEASURED + COMPUTE}, "fitted": sorted(self.fitted)}


@functools.lru_cache(maxsize=64)
def _parsed(spec: str) -> Any:
    return as_topology(spec)


def _topology(topology: Any) -> Any:
    """A Topology (string specs parsed once: the fit evaluates thousands of grid points)."""
    return _parsed(topology) if isinstance(topology, str) else as_topology(topology)


def _nic_rate(topology: Any, rate_bits: float | None) -> float:
    if rate_bits is not None:
        return rate_bits / 8
    topo = _topology(topology)
    if topo.inter_bw is None:
        raise CostModelError(f"topology {topo} has no inter_bw", "give rate_bits or a topology with inter_bw")
    return topo.inter_bw * topo.local_size


def compute_time(c: Candidate, batch: float, p: StepParams, ranks_per_core: float = 1.0) -> float:
    d_in = sum(c.tower_in_widths)
    d_tm = d_in * (c.tm_scale + (1 if c.decoder else 0)) if c.strategy == "sptt_tm" else 0.0
    d_int = d_in if c.decoder else sum(c.out_widths)
    knee = 1 + batch / p.batch_knee if p.batch_knee > 0 else 1.0
    d_run = 0.0 if c.strategy.startswith("torchrec_") else d_in  # TorchRec's fused path packs nothing itself
    return ranks_per_core * (p.c_fixed + batch * knee * (p.c_sample + p.c_element * d_in + p.c_tm * d_tm
                                                         + p.c_interaction * d_int + p.c_runtime * d_run))


def output_fanout(c: Candidate, world: int) -> int:
    """How many times a sample's pooled embeddings cross the wire per direction, relative to
    table-wise sharding. TorchRec's row-wise sharding (RW) splits every table's rows over all
    `world` ranks, so each rank pools a partial sum for *every* sample and the output exchange is a
    reduce-scatter: a rank receives `world - 1` partials of its samples' embeddings instead of one
    copy, and the backward all-gather sends the gradients alike -- `world` times table-wise's
    cross-host bytes. Table-wise-row-wise (TWRW) splits rows within the owning host only: its
    cross-host bytes are table-wise's; its intra-host reduce-scatter is :func:`loopback_bytes`."""
    return world if c.strategy == "torchrec_rw" else 1


def loopback_bytes(c: Candidate, num_hosts: int, local_size: int, batch: float) -> float:
    """Intra-host bytes a rank sends per step that no fitted time contains: TorchRec TWRW pools, on
    each of a host's `L` ranks, partial sums of the host's tables (``D / N`` wide) for all ``N L b``
    samples of the world, reduce-scatters them over the host (a rank sends ``(L - 1) / L`` of its
    partials) and all-gathers their gradients back alike: ``2 (L - 1) b D w``. Other strategies'
    intra-host exchanges are in the fitting runs' own non-wire times (0 here)."""
    if c.strategy != "torchrec_twrw" or local_size < 2:
        return 0.0
    return 2 * (local_size - 1) * batch * sum(c.tower_in_widths) * c.wire_bytes


def wire_time(c: Candidate, topology: Any, batch: float, p: StepParams, rate_bits: float | None = None) -> float:
    topo = _topology(topology)
    n, l_ = topo.num_hosts, topo.local_size
    if n < 2:
        return 0.0
    rate = _nic_rate(topology, rate_bits)
    fanout = output_fanout(c, n * l_)
    per_sample = sum(8 * i + 2 * c.wire_bytes * o * fanout for i, o in zip(c.ids_per_sample, c.out_widths))
    x = l_ * (n - 1) / n * batch * per_sample
    msgs = (n - 1) * l_ if c.flat_like else (n - 1)
    fan_in = (n - 1) * l_ * (l_ if c.flat_like else 1)
    size = x / max(1.0, l_ * msgs * EXCHANGES)
    duplex = p.duplex if c.strategy.startswith("torchrec_") else 0.0  # this runtime's exchanges are full duplex
    transfer = x / (p.eta * rate) * (1 + duplex) * (1 + p.n_half / max(size, 1.0)) \
        * (1 + p.kappa * math.log2(max(1, fan_in)))
    loop = loopback_bytes(c, n, l_, batch)
    if loop and p.loopback <= 0:
        raise CostModelError(f"{c.strategy} moves {loop:.0f} intra-host bytes per step and no loopback rate is set",
                             "give StepParams(loopback=bytes/s), measured by benchmarks.emulated.loopback_rate")
    return EXCHANGES * p.alpha + EXCHANGES * msgs * p.gap + transfer + (loop / p.loopback if loop else 0.0)


def predict_step(candidate: Candidate, topology: Any, batch: float, params: StepParams | None = None, *,
                 rate_bits: float | None = None, ranks_per_core: float = 1.0) -> tuple[float, tuple[float, float]]:
    """(seconds, (low, high)) of one step; the band spans the unfitted network parameters' :data:`RANGES`."""
    p = params or StepParams()
    base = compute_time(candidate, batch, p, ranks_per_core) + wire_time(candidate, topology, batch, p, rate_bits)
    free = [k for k in NETWORK if k not in p.fitted]
    values = []
    for corner in itertools.product(*[RANGES[k] for k in free]):
        q = replace(p, **dict(zip(free, corner)))
        values.append(compute_time(candidate, batch, q, ranks_per_core)
                      + wire_time(candidate, topology, batch, q, rate_bits))
    return base, ((min(values), max(values)) if values else (base, base))


def speedup_band(candidate: Candidate, base: Candidate, topology: Any, batch: float,
                 params: StepParams | None = None, **kw: Any) -> tuple[float, tuple[float, float]]:
    """base step / candidate step, and its range over the unfitted parameters (both priced at
    the same corner: the ratio's band, not a ratio of the two bands)."""
    p = params or StepParams()
    free = [k for k in NETWORK if k not in p.fitted]
    ratios = []
    for corner in itertools.product(*[RANGES[k] for k in free]) if free else [()]:
        q = replace(p, **dict(zip(free, corner)))
        ratios.append(predict_step(base, topology, batch, replace(q, fitted=frozenset(NETWORK)), **kw)[0]
                      / predict_step(candidate, topology, batch, replace(q, fitted=frozenset(NETWORK)), **kw)[0])
    mid = predict_step(base, topology, batch, p, **kw)[0] / predict_step(candidate, topology, batch, p, **kw)[0]
    return mid, (min(ratios), max(ratios))


def candidate_from_row(row: dict[str, Any]) -> Candidate:
    """The candidate a bench result row timed (from its descriptor), for fitting and held-out checks."""
    d = row.get("descriptor") or {}
    towers = d.get("per_tower") or [[1664, 1664, 1.0, None]]
    wire = {"fp16": 2.0, "bf16": 2.0, "fp8_e4m3": 1.0}.get(row.get("wire_dtype"), 4.0)
    ids = [w_in / 64 for w_in, *_ in towers]  # one id per 64-wide embedding (the bench model)
    outs = tuple(float(t[1]) for t in towers)
    strategy = "sptt_tm" if row["strategy"] == "torchrec_towers" else row["strategy"]  # TorchRec's towers: same flow
    decoder = strategy == "sptt_tm" and any(len(t) > 3 and t[3] == "decoder" for t in towers)
    return Candidate(strategy, tuple(float(t[0]) for t in towers), tuple(ids),
                     None if strategy != "sptt_tm" else outs, wire, decoder)


def _setting(run: dict[str, Any]) -> tuple[str, float, float, float]:
    """(topology, rate bits, ranks per core, batch) of a bench report's row (``run`` = row + config)."""
    cfg = run["config"]
    world = run["row"]["world"]
    return cfg["emulate"], cfg["inter_bw_bits"], world / max(1, run["row"].get("cores", world)), \
        run["row"]["batch_per_rank"]


@dataclass(frozen=True)
class BatchShape:
    """How a step's CPU grows with the per-rank batch, ``cpu(b) = fixed + per_sample b + per_sample_sq b^2``,
    from a micro-benchmark at three or more batch sizes (:meth:`from_points`). Runs at one batch size
    cannot tell a step's fixed part from its per-sample part; :func:`fit` takes the shape from here
    and the level from the runs."""

    fixed: float
    per_sample: float
    per_sample_sq: float = 0.0

    @classmethod
    def from_points(cls, points: Sequence[tuple[float, float]]) -> "BatchShape":
        """Least squares of (batch, CPU seconds) points; at least 3 distinct batches."""
        import numpy as np

        if len({b for b, _ in points}) < 3:
            raise CostModelError("a batch shape needs CPU times at 3 or more batch sizes", "time more batch sizes")
        a = np.array([[1.0, b, b * b] for b, _ in points])
        coef = np.linalg.lstsq(a, np.array([t for _, t in points]), rcond=None)[0]
        return cls(*(max(0.0, float(x)) for x in coef))

    def fixed_share(self, batch: float) -> float:
        """The fixed part's share of the step's CPU at `batch`."""
        total = self.fixed + self.per_sample * batch + self.per_sample_sq * batch * batch
        return self.fixed / total if total > 0 else 0.0

    @property
    def knee(self) -> float:
        """The batch at which the per-sample cost has doubled (0: linear)."""
        return self.per_sample / self.per_sample_sq if self.per_sample_sq > 0 else 0.0


def _fit_compute(runs: list[dict[str, Any]], shape: BatchShape | None = None) -> dict[str, float]:
    """Least squares of the non-wire times over the compute terms (non-negative by clipping). With a
    `shape`, ``c_fixed`` is the flat runs' non-wire time per rank-on-a-core times the shape's fixed share
    at their batch (averaged; a strategy's heavier compute -- decoders, say -- is per sample, not fixed),
    and the per-sample terms carry the shape's knee."""
    import numpy as np

    knee = shape.knee if shape else 0.0
    fixed = 0.0
    if shape:  # the fixed part is one constant for every strategy: take it from the flat runs (else all runs)
        ref = [r for r in runs if r["row"].get("strategy") == "flat"] or runs
        fixed = sum(r["row"]["non_wire_s"] / _setting(r)[2] * shape.fixed_share(_setting(r)[3]) for r in ref) / len(ref)
    rows, y = [], []
    for run in runs:
        c = candidate_from_row(run["row"])
        _, _, k, b = _setting(run)
        d_in = sum(c.tower_in_widths)
        d_tm = d_in * (2 if c.decoder else 1) if c.strategy == "sptt_tm" else 0.0
        kb = k * b * (1 + b / knee if knee else 1.0)
        d_run = 0.0 if c.strategy.startswith("torchrec_") else d_in
        rows.append([0.0 if shape else k, kb, kb * d_in, kb * d_tm, kb * (d_in if c.decoder else sum(c.out_widths)),
                     kb * d_run])
        y.append(run["row"]["non_wire_s"] - k * fixed)
    a, target = np.array(rows), np.array(y)
    used = [j for j in range(a.shape[1]) if np.ptp(a[:, j]) > 0 or j == 1]
    coef = np.zeros(a.shape[1])
    while used:  # non-negative least squares: drop the most negative term and solve again (clipping it
        sol = np.linalg.lstsq(a[:, used], target, rcond=None)[0]  # would shift every other row's time)
        if sol.min() >= 0:
            coef[used] = sol
            break
        used.pop(int(sol.argmin()))
    if shape:
        coef[0] = fixed
    return {**dict(zip(COMPUTE, coef.tolist())), "batch_knee": knee}


DUPLEX_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def fit(runs: Sequence[dict[str, Any]], shape: BatchShape | None = None, loopback: float = 0.0) -> StepParams:
    """Fit :class:`StepParams` on bench runs: ``[{"row": result row, "config": its report's config}]``
    (rows need ``non_wire_s``). The network grid keeps the combination with the least squared log error.
    ``duplex`` is in the grid (and fitted) only when the runs include TorchRec rows. `shape` (a
    micro-benchmark's :class:`BatchShape`) splits the compute into its fixed and per-sample parts
when the runs hold one batch size;
    `loopback` (bytes/s, ``benchmarks.emulated.loopback_rate``) prices :func:`loopback_bytes`."""
    runs = [r for r in runs if r["row"].get("non_wire_s") is not None]
    if len(runs) < 3:
        raise CostModelError(f"{len(runs)} runs with a measured non-wire time", "fit on at least 3 bench rows")
    if len({_setting(r)[3] for r in runs}) > 1:
        shape = None  # runs at several batch sizes fix the fixed part themselves (the c_fixed column)
    p = StepParams(**_fit_compute(runs, shape), loopback=loopback)
    torchrec = any(candidate_from_row(r["row"]).strategy.startswith("torchrec_") for r in runs)
    # eta (scale) and alpha (offset) are identified by any set of runs; message size, count and
    # fan-in only change with the host layout, so g, n_half and kappa need runs on several layouts:
    # on one layout they trade against alpha and eta at no cost to the fit, and are held at 0 (no
    # such mechanism) for the point prediction, their RANGES giving predict_step's band
    layouts = len({_setting(r)[0] for r in runs}) > 1
    grid = {"alpha": (0.0, 50e-6, 200e-6, 1e-3), "gap": (0.0, 10e-6, 50e-6) if layouts else (0.0,),
            "n_half": (0.0, 16e3, 64e3, 256e3) if layouts else (0.0,), "eta": (0.6, 0.75, 0.9, 1.0),
            "kappa": (0.0, 0.1, 0.25) if layouts else (0.0,), "duplex": DUPLEX_GRID if torchrec else (0.0,)}
    best, best_err = p, math.inf
    for values in itertools.product(*grid.values()):
        q = replace(p, **dict(zip(grid, values)))
        err = sum(math.log(_predict_run(q, run) / run["row"]["step_time_median_s"]) ** 2 for run in runs)
        if err < best_err:
            best, best_err = q, err
    network = {"eta", "alpha"} | ({"gap", "n_half", "kappa"} if layouts else set()) | ({"duplex"} if torchrec else set())
    return replace(best, fitted=frozenset(network | set(COMPUTE)))


def _predict_run(p: StepParams, run: dict[str, Any]) -> float:
    topo, rate, k, b = _setting(run)
    c = candidate_from_row(run["row"])
    return compute_time(c, b, p, k) + wire_time(c, topo, b, p, rate)


def held_out_errors(params: StepParams, runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per held-out run: predicted vs measured step and the relative error (description only in)."""
    out = []
    for run in runs:
        pred = _predict_run(params, run)
        meas = run["row"]["step_time_median_s"]
        out.append({"run": run["row"].get("run"), "strategy": run["row"].get("strategy"), "point": run.get("point"),
                    "predicted_s": pred, "measured_s": meas,
                    "error": pred / meas - 1, "cpu_bound": bool(run["row"].get("box_bound"))})
    return out
