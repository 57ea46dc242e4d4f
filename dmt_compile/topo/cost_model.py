"""Numeric cost model: bind a Topology and a workload to the symbolic formulas and evaluate.

Planner-facing pure functions (all times in seconds per rank per iteration, fwd + bwd):

``predict_sptt(topology, *, batch_per_rank, tower_in_widths, ids_per_sample,
tower_out_widths=None, rows_per_sample=None, tower_hosts=None, tm_flops_per_sample=None,
tm_params=None, bytes_per_element=4, params=None) -> dict[str, float]``
    One entry per tower: ``tower_in_widths[t]`` = sum of its features' embedding widths
    (elements), ``ids_per_sample[t]`` = sum of their pooling factors, ``rows_per_sample[t]``
    = sum of pooling x width (default: ``tower_in_widths``, i.e. pooling 1),
    ``tower_out_widths[t]`` = Tower-Module output width (None: identity TM, plain SPTT),
    ``tower_hosts[t]`` = host of the tower (default: tower t on host t). A non-identity TM
    defaults to a linear layer: 2·D·o FLOPs per sample and D·o + o parameters. The busiest
    host sets every per-host quantity.

``predict_flat(topology, *, batch_per_rank, feature_widths, ids_per_sample=None,
strategy="flat", host_split="column", bytes_per_element=4, params=None) -> dict[str, float]``
    The baselines: ``flat`` (balanced table/column-wise, one global AlltoAll), ``rw``,
    ``twrw`` (tables placed on hosts by ``host_split``).

Both take ``compute={field: value}`` for the rest of the step (:data:`COMPUTE_FIELDS`: dense
part, decoders, Tower-Module traffic, runtime operators, held parameters; all 0 by default,
i.e. the embedding stage only) and return the keys :data:`RESULT_KEYS`: each term of
:data:`~dmt_compile.topo.cost_exprs.TERMS` (fwd + bwd), ``fwd``, ``bwd``, ``comm`` (all
collectives), ``compute`` (:data:`COMPUTE_TERMS`) and ``total``. :func:`evaluate` gives the full :class:`CostBreakdown` (per-phase
seconds and per-rank bytes). Formulas: :mod:`dmt_compile.topo.cost_exprs`.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Sequence

import sympy as sp

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_exprs import PHASES, STRATEGIES, TERMS, byte_exprs, strategy_exprs
from dmt_compile.topo.cost_symbols import SYMBOLS, CostParams
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["Workload", "CostBreakdown", "RESULT_KEYS", "COMM_TERMS", "COMPUTE_TERMS", "COMPUTE_FIELDS",
           "MAX_COST_HOSTS", "bind", "evaluate", "split_features", "predict_sptt", "predict_flat"]

#: Largest host count the per-host loads are computed for (524,288 GPUs at 8 per host): beyond any
#: cluster, and it keeps `split_features` under a few seconds and ~100 MB (a preset such as h100:800000000 is refused above it).
MAX_COST_HOSTS = 65_536
COMM_TERMS = ("id_dist", "id_intra", "emb_intra", "tm_sync", "emb_dist", "dense_sync")
COMPUTE_TERMS = ("lookup", "tm", "permute", "dense", "decoder", "optimizer")
#: Workload fields of the rest of the step (dense part, decoders, TM traffic, runtime, held parameters).
COMPUTE_FIELDS = ("t_d", "t_x", "t_t", "t_l", "t_o", "M_d")
RESULT_KEYS = (*TERMS, "fwd", "bwd", "comm", "compute", "total")
_ARGS = tuple(sym for sym, _, _ in SYMBOLS.values())


@dataclass(frozen=True)
class Workload:
    """Aggregate per-sample quantities of one embedding stage (see cost_symbols for units)."""

    batch_per_rank: float
    D: float
    I: float
    R: float
    D_t: float
    I_t: float
    R_t: float
    o_t: float
    phi: float = 0.0
    M_t: float = 0.0
    bytes_per_element: float = 4.0
    # the rest of the step (see cost_symbols; 0 leaves a term out)
    t_d: float = 0.0
    t_x: float = 0.0
    t_t: float = 0.0
    t_l: float = 0.0
    t_o: float = 0.0
    M_d: float = 0.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise CostModelError(
                    f"workload {name} must be a finite non-negative number, got {value!r}",
                    "check the batch, widths and pooling factors you passed",
                )
        if self.batch_per_rank <= 0 or self.bytes_per_element <= 0:
            raise CostModelError("batch_per_rank and bytes_per_element must be positive",
                                 "give e.g. batch_per_rank=1024, bytes_per_element=4")


@dataclass(frozen=True)
class CostBreakdown:
    """Seconds per (term, phase) and bytes sent per rank, of one strategy on one topology."""

    strategy: str
    seconds: Mapping[tuple[str, str], float]
    bytes: Mapping[str, float]

    def summary(self) -> dict[str, float]:
        out = {t: self.seconds[t, "fwd"] + self.seconds[t, "bwd"] for t in TERMS}
        out["fwd"] = sum(self.seconds[t, "fwd"] for t in TERMS)
        out["bwd"] = sum(self.seconds[t, "bwd"] for t in TERMS)
        out["comm"] = sum(out[t] for t in COMM_TERMS)
        out["compute"] = sum(out[t] for t in COMPUTE_TERMS)
        out["total"] = out["fwd"] + out["bwd"]
        return out


def bind(topology: "Topology | str", workload: Workload, params: CostParams | None = None,
         *, need_flops: bool = False) -> dict[sp.Symbol, float]:
    """Values of every cost symbol for `topology`, `workload` and `params`."""
    topo = as_topology(topology)
    p = params or CostParams()
    missing = [a for a in ("intra_bw", "inter_bw") if getattr(topo, a) is None]
    hbm = p.hbm_bw if p.hbm_bw is not None else topo.hbm_bw
    a_i = p.intra_latency if p.intra_latency is not None else topo.intra_latency
    a_e = p.inter_latency if p.inter_latency is not None else topo.cross_latency()
    flops = p.flop_rate if p.flop_rate is not None else topo.flop_rate
    missing += [n for n, v in (("hbm_bw", hbm), ("intra_latency", a_i), ("inter_latency", a_e)) if v is None]
    if need_flops and flops is None:
        missing.append("flop_rate")
    if missing:
        raise CostModelError(
            f"topology {topo} lacks {', '.join(missing)} needed by the cost model (no silent defaults)",
            "use a preset such as 'h100:64' or 'a100:16', or give the numbers in the topology dict "
            "or in CostParams",
        )
    if p.inter_latency is not None:
        a_e = p.inter_latency + sum(lv.latency for lv in topo.active_levels)
    v = {
        "N": topo.num_hosts, "L": topo.local_size, "b": workload.batch_per_rank,
        "D": workload.D, "I": workload.I, "R": workload.R, "D_t": workload.D_t,
        "I_t": workload.I_t, "R_t": workload.R_t, "o_t": workload.o_t, "phi": workload.phi,
        "M_t": workload.M_t, "s_e": workload.bytes_per_element, "s_id": p.id_bytes,
        "B_i": topo.intra_bw, "B_e": topo.inter_bw, "B_m": hbm,
        "F": flops if flops is not None else 1.0,
        "alpha_i": a_i, "alpha_e": a_e, "g_i": p.gap_intra, "g_e": p.gap_inter,
        "n_i": p.n_half_intra, "n_e": p.n_half_inter, "eta_i": p.eta_intra,
        "eta_e": p.eta_inter, "kappa_c": p.congestion, "q_0": p.fan_in_ref,
        "sigma": topo.network_taper(), "beta": p.bwd_multiplier,
        "k": p.ranks_per_device, "n_c": p.id_collectives,
        **{name: getattr(workload, name) for name in COMPUTE_FIELDS},
    }
    return {SYMBOLS[k][0]: float(val) for k, val in v.items()}


@lru_cache(maxsize=None)
def _compiled(strategy: str) -> Callable[..., list[float]]:
    exprs = strategy_exprs(strategy)
    keys = [(t, p) for t in TERMS for p in PHASES]
    bytes_ = byte_exprs(strategy)
    return sp.lambdify(_ARGS, [exprs[k] for k in keys] + [bytes_["cross_host"], bytes_["intra_host"]],
                       modules="math")


def evaluate(topology: "Topology | str", strategy: str, workload: Workload,
             params: CostParams | None = None) -> CostBreakdown:
    """Evaluate `strategy` (lambdified once per strategy, cached)."""
    if strategy not in STRATEGIES:
        raise CostModelError(f"unknown strategy {strategy!r}", f"use one of {list(STRATEGIES)}")
    values = bind(topology, workload, params, need_flops=strategy == "sptt_tm" and workload.phi > 0)
    out = _compiled(strategy)(*(values[s] for s in _ARGS))
    keys = [(t, p) for t in TERMS for p in PHASES]
    seconds = {k: float(x) for k, x in zip(keys, out)}
    return CostBreakdown(strategy, seconds, {"cross_host": float(out[-2]), "intra_host": float(out[-1])})


# ---- workloads from per-feature / per-tower descriptions -----------------------------------
def _floats(name: str, values: Sequence[float], n: int | None = None) -> list[float]:
    vals = [float(v) for v in values]
    if n is not None and len(vals) != n:
        raise CostModelError(f"{name} has {len(vals)} entries, expected {n}", f"give one {name} entry per feature/tower")
    if any(not math.isfinite(v) or v < 0 for v in vals):
        raise CostModelError(f"{name} must be finite and non-negative, got {vals}", f"fix {name}")
    return vals


def split_features(widths: Sequence[float], ids: Sequence[float], num_hosts: int,
                   split: str = "column") -> list[tuple[float, float, float]]:
    """Per-host (width, ids, rows) loads of the features placed on `num_hosts` hosts.

    ``column``: the features' columns laid end to end and cut into equal host ranges (every
    host gets D/N; a feature cut in k pieces sends its ids to k hosts). ``table``: whole
    tables, largest first onto the least-loaded host (deterministic LPT).
    """
    if not isinstance(num_hosts, int) or isinstance(num_hosts, bool) or not 1 <= num_hosts <= MAX_COST_HOSTS:
        raise CostModelError(
            f"the cost model prices up to {MAX_COST_HOSTS:,} hosts; got num_hosts={num_hosts!r}",
            f"use a topology with at most {MAX_COST_HOSTS:,} hosts (e.g. h100:{8 * MAX_COST_HOSTS}); per-host "
            "loads are kept per host, and no cluster is larger")
    w, p = _floats("feature_widths", widths), _floats("ids_per_sample", ids, len(widths))
    loads = [[0.0, 0.0, 0.0] for _ in range(num_hosts)]
    if split == "column":
        total, start = sum(w), 0.0
        cut = total / num_hosts
        for width, pool in zip(w, p):
            end = start + width
            for h in range(int(start // cut) if cut else 0, num_hosts):
                lo, hi = max(start, h * cut), min(end, (h + 1) * cut)
                if hi - lo > 1e-9 * max(1.0, total):
                    loads[h][0] += hi - lo
                    loads[h][1] += pool
                    loads[h][2] += pool * (hi - lo)
                if (h + 1) * cut >= end:
                    break
            start = end
    elif split == "table":
        free = [(0.0, j) for j in range(num_hosts)]  # (load, host): the least-loaded host first, ties by index
        for f in sorted(range(len(w)), key=lambda i: (-w[i], i)):
            _, h = heapq.heappop(free)
            loads[h][0] += w[f]
            heapq.heappush(free, (loads[h][0], h))
            loads[h][1] += p[f]
            loads[h][2] += p[f] * w[f]
    else:
        raise CostModelError(f"unknown host split {split!r}", "use 'column' or 'table'")
    return [tuple(x) for x in loads]  # type: ignore[misc]


def predict_flat(topology: "Topology | str", *, batch_per_rank: float, feature_widths: Sequence[float],
                 ids_per_sample: Sequence[float] | None = None, strategy: str = "flat",
                 host_split: str = "column", bytes_per_element: float = 4,
                 params: CostParams | None = None, compute: Mapping[str, float] | None = None) -> dict[str, float]:
    """Seconds per term of a baseline (``flat``, ``rw`` or ``twrw``); see the module docstring."""
    if strategy not in ("flat", "rw", "twrw"):
        raise CostModelError(f"predict_flat prices flat/rw/twrw, not {strategy!r}",
                             "use predict_sptt for SPTT strategies")
    topo = as_topology(topology)
    widths = _floats("feature_widths", feature_widths)
    ids = [1.0] * len(widths) if ids_per_sample is None else _floats("ids_per_sample", ids_per_sample, len(widths))
    if not widths:
        raise CostModelError("no sparse features given", "pass at least one feature width")
    loads = split_features(widths, ids, topo.num_hosts, host_split)
    w = Workload(batch_per_rank, sum(widths), sum(ids), sum(a * b for a, b in zip(widths, ids)),
                 max(x[0] for x in loads), max(x[1] for x in loads), max(x[2] for x in loads),
                 max(x[0] for x in loads), bytes_per_element=bytes_per_element, **_compute_fields(compute))
    return evaluate(topo, strategy, w, params).summary()


def _compute_fields(compute: Mapping[str, float] | None) -> dict[str, float]:
    unknown = sorted(set(compute or {}) - set(COMPUTE_FIELDS))
    if unknown:
        raise CostModelError(f"unknown compute field(s) {unknown}", f"use {', '.join(COMPUTE_FIELDS)}")
    return {k: float(v) for k, v in (compute or {}).items()}


def predict_sptt(topology: "Topology | str", *, batch_per_rank: float, tower_in_widths: Sequence[float],
                 ids_per_sample: Sequence[float], tower_out_widths: Sequence[float] | None = None,
                 rows_per_sample: Sequence[float] | None = None, tower_hosts: Sequence[int] | None = None,
                 tm_flops_per_sample: Sequence[float] | None = None, tm_params: Sequence[float] | None = None,
                 bytes_per_element: float = 4, params: CostParams | None = None,
                 compute: Mapping[str, float] | None = None) -> dict[str, float]:
    """Seconds per term of SPTT (identity TM) or SPTT+TM; see the module docstring."""
    topo = as_topology(topology)
    d_in = _floats("tower_in_widths", tower_in_widths)
    n = len(d_in)
    if n == 0:
        raise CostModelError("no towers given", "pass one tower_in_widths entry per tower")
    ids = _floats("ids_per_sample", ids_per_sample, n)
    rows = d_in if rows_per_sample is None else _floats("rows_per_sample", rows_per_sample, n)
    tm = tower_out_widths is not None
    d_out = _floats("tower_out_widths", tower_out_widths, n) if tm else d_in  # type: ignore[arg-type]
    flops = (_floats("tm_flops_per_sample", tm_flops_per_sample, n) if tm_flops_per_sample is not None
             else [2.0 * a * b for a, b in zip(d_in, d_out)] if tm else [0.0] * n)
    prm = (_floats("tm_params", tm_params, n) if tm_params is not None
           else [a * b + b for a, b in zip(d_in, d_out)] if tm else [0.0] * n)
    if tower_hosts is None:
        if n > topo.num_hosts:
            raise CostModelError(
                f"{n} towers but topology {topo} has {topo.num_hosts} hosts",
                "pass tower_hosts to place several towers on one host, or use fewer towers",
            )
        hosts = list(range(n))
    else:
        hosts = list(tower_hosts)
        if len(hosts) != n or any(not isinstance(h, int) or not 0 <= h < topo.num_hosts for h in hosts):
            raise CostModelError(f"tower_hosts {hosts} must give a host in 0..{topo.num_hosts - 1} per tower",
                                 "give one host index per tower")
    per_host: dict[int, list[float]] = {}  # only hosts with a tower: O(towers), not O(hosts)
    for t, h in enumerate(hosts):
        row = per_host.setdefault(h, [0.0] * 6)
        for k, val in enumerate((d_in[t], ids[t], rows[t], d_out[t], flops[t], prm[t])):
            row[k] += val
    top = [max(row[k] for row in per_host.values()) for k in range(6)]
    w = Workload(batch_per_rank, sum(d_in), sum(ids), sum(rows), top[0], top[1], top[2], top[3],
                 top[4], top[5], bytes_per_element, **_compute_fields(compute))
    return evaluate(topo, "sptt_tm" if tm else "sptt", w, params).summary()
