"""Symbolic per-rank, per-iteration times of each embedding strategy (sympy).

Building blocks (α-β / Hockney models of collectives, docs/COST_MODEL.md; symbols and units in
:mod:`dmt_compile.topo.cost_symbols`):

* link rate for a message of m bytes: ``r_x(m) = eta_x·B_x·m/(m + n_x)`` (Hockney with n½);
* congestion on fan-in q: ``κ(q) = 1 + kappa_c·max(0, log2(q/q_0))``;
* flat AlltoAll over P = N·L ranks, S bytes sent per rank (NVLink and network run at once)::

      α + max(κ((N-1)L)·[(P-L)·g_e + σ·S(N-1)/N / r_e(S/P)],  (L-1)·g_i + S(L-1)/P / r_i(S/P))

* rail (peer) AlltoAll over the N ranks of one local index:
  ``α_e + κ(N-1)·[(N-1)·g_e + σ·S(N-1)/N / r_e(S/N)]``;
* intra-host AlltoAll over L ranks: ``α_i + (L-1)·g_i + S(L-1)/L / r_i(S/L)``;
* permute (regrouping copy, read + write): ``2·S/B_m`` per stage.

Strategies (:data:`STRATEGIES`): ``flat`` (table-/column-wise hybrid parallel, balanced,
one global AlltoAll each way), ``rw`` (row-wise over the world: reduce-scatter/all-gather of
partial sums), ``twrw`` (TorchRec's table-wise across hosts, row-wise inside: flat id
AlltoAll, intra reduce-scatter then rail AlltoAll), ``sptt`` (peer-first SPTT, identity
Tower Module: rail id exchange, intra id exchange, lookup, intra output AlltoAll, rail
output AlltoAll) and ``sptt_tm`` (SPTT with a Tower Module of output width o_t and
phi FLOPs per sample, plus its intra-host gradient all-reduce).

Compute of the rest of the step (zero unless its workload symbols are given; measured by
:mod:`dmt_compile.topo.calibrate` or estimated from FLOPs): ``dense`` (bottom MLP, interaction,
top MLP, loss: ``b·t_d``), ``decoder`` (sptt_tm's per-tower decoders, ``b·t_x``), the Tower
Module's measured time ``N·b·t_t`` (added to its FLOP term), lookups' measured time per id
``t_l`` (added to the memory template), ``optimizer`` (``t_o`` per step) and ``dense_sync``
(the hierarchical all-reduce of the ``M_d`` data-parallel gradients: reduce-scatter and
all-gather inside the host, an all-reduce of 1/L of them across hosts). Measured fwd + bwd
times are split 1 : β between the phases. Every compute term is multiplied by ``k``, the ranks
sharing one core or device (1 on a GPU cluster, 2 on an emulation of 4 ranks on 2 cores). Id
exchanges pay ``n_c`` start-up latencies (counts, lengths, values).
"""
from __future__ import annotations

from functools import lru_cache

import sympy as sp

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_symbols import S

__all__ = ["STRATEGIES", "TERMS", "PHASES", "strategy_exprs", "byte_exprs", "formula",
           "flat_a2a", "rail_a2a", "intra_a2a"]

STRATEGIES = ("flat", "rw", "twrw", "sptt", "sptt_tm")
TERMS = ("id_dist", "id_intra", "lookup", "emb_intra", "tm", "tm_sync", "emb_dist", "permute",
         "dense", "decoder", "optimizer", "dense_sync")
PHASES = ("fwd", "bwd")

Expr = sp.Expr


def _rate(eta: Expr, bw: Expr, n_half: Expr, m: Expr) -> Expr:
    return eta * bw * m / (m + n_half)


def _kappa(q: Expr) -> Expr:
    return 1 + S.kappa_c * sp.Max(0, sp.log(sp.Max(1, q) / S.q_0, 2))


def _multi_host() -> Expr:
    return sp.Min(1, S.N - 1)


def _multi_local() -> Expr:
    return sp.Min(1, S.L - 1)


def flat_a2a(size: Expr) -> Expr:
    """One flat AlltoAll over N·L ranks, `size` bytes sent per rank (s)."""
    N, L = S.N, S.L
    P = N * L
    m = size / P
    net = _kappa((N - 1) * L) * (
        (P - L) * S.g_e + S.sigma * size * (N - 1) / N / _rate(S.eta_e, S.B_e, S.n_e, m)
    )
    nvl = _multi_local() * ((L - 1) * S.g_i + size * (L - 1) / P / _rate(S.eta_i, S.B_i, S.n_i, m))
    alpha = S.alpha_i + _multi_host() * (S.alpha_e - S.alpha_i)
    return sp.Min(1, P - 1) * (alpha + sp.Max(net, nvl))


def rail_a2a(size: Expr) -> Expr:
    """AlltoAll among the N peers sharing a local index (cross-host only), in s."""
    N = S.N
    m = size / N
    body = (N - 1) * S.g_e + S.sigma * size * (N - 1) / N / _rate(S.eta_e, S.B_e, S.n_e, m)
    return _multi_host() * (S.alpha_e + _kappa(N - 1) * body)


def intra_a2a(size: Expr, rounds: int = 1) -> Expr:
    """AlltoAll among the L ranks of one host; `rounds`=2 gives a ring all-reduce (s)."""
    L = S.L
    m = size / L
    body = rounds * (L - 1) * S.g_i + rounds * size * (L - 1) / L / _rate(S.eta_i, S.B_i, S.n_i, m)
    return _multi_local() * (S.alpha_i + body)


def _lookup(ids: Expr, rows: Expr, out: Expr) -> Expr:
    """TorchRec's compute template with a = b = c = 1 (read ids, rows, write outputs), plus the
    measured time per id; on a shared core or device (s, forward)."""
    return S.k * ((ids * S.s_id + rows * S.s_e + out * S.s_e) / S.B_m + ids * S.t_l / (1 + S.beta))


def _split(e: dict, term: str, total: Expr) -> None:
    """A measured fwd + bwd time, split 1 : β between the phases."""
    e[term, "fwd"], e[term, "bwd"] = total / (1 + S.beta), total * S.beta / (1 + S.beta)


def _ids(collective: Expr, alpha: Expr) -> Expr:
    """An id exchange: the collective plus n_c - 1 more start-ups (counts, lengths before values)."""
    return collective + (S.n_c - 1) * alpha


def _rest(e: dict, strategy: str) -> None:
    """Dense part, decoders, optimizer and the hierarchical dense all-reduce (module docstring)."""
    b, L = S.b, S.L
    _split(e, "dense", S.k * b * S.t_d)
    if strategy == "sptt_tm":
        _split(e, "decoder", S.k * b * S.t_x)
    e["optimizer", "bwd"] = S.k * S.t_o
    grads = S.M_d * S.s_e
    e["dense_sync", "bwd"] = sp.Min(1, S.M_d) * (2 * intra_a2a(grads) + 2 * rail_a2a(grads / L))


@lru_cache(maxsize=None)
def strategy_exprs(strategy: str) -> dict[tuple[str, str], Expr]:
    """``{(term, phase): expr}`` for `strategy`; every term/phase key is present (0 if unused)."""
    if strategy not in STRATEGIES:
        raise CostModelError(f"unknown strategy {strategy!r}", f"use one of {list(STRATEGIES)}")
    N, L, b, beta = S.N, S.L, S.b, S.beta
    W = N * L
    e: dict[tuple[str, str], Expr] = {(t, p): sp.Integer(0) for t in TERMS for p in PHASES}
    alpha_flat = S.alpha_i + _multi_host() * (S.alpha_e - S.alpha_i)
    if strategy == "flat":
        e["id_dist", "fwd"] = _ids(flat_a2a(b * S.I * S.s_id), alpha_flat)
        look = _lookup(b * S.I, b * S.R, b * S.D)
        emb = flat_a2a(b * S.D * S.s_e)
        e["emb_dist", "fwd"] = e["emb_dist", "bwd"] = emb
    elif strategy == "rw":
        e["id_dist", "fwd"] = _ids(flat_a2a(b * S.I * S.s_id), alpha_flat)
        look = _lookup(b * S.I, b * S.R, W * b * S.D)
        emb = flat_a2a(W * b * S.D * S.s_e)  # reduce-scatter fwd / all-gather bwd of partial sums
        e["emb_dist", "fwd"] = e["emb_dist", "bwd"] = emb
    elif strategy == "twrw":
        e["id_dist", "fwd"] = _ids(flat_a2a(N * b * S.I_t * S.s_id), alpha_flat)
        look = _lookup(N * b * S.I_t, N * b * S.R_t, W * b * S.D_t)
        e["emb_intra", "fwd"] = e["emb_intra", "bwd"] = intra_a2a(W * b * S.D_t * S.s_e)
        e["emb_dist", "fwd"] = e["emb_dist", "bwd"] = rail_a2a(N * b * S.D_t * S.s_e)
        e["permute", "fwd"] = e["permute", "bwd"] = S.k * 4 * N * b * S.D_t * S.s_e / S.B_m
    else:  # sptt, sptt_tm
        out = S.o_t if strategy == "sptt_tm" else S.D_t
        e["id_dist", "fwd"] = _ids(rail_a2a(N * b * S.I_t * S.s_id), _multi_host() * S.alpha_e)
        e["id_intra", "fwd"] = _ids(intra_a2a(N * b * S.I_t * S.s_id), _multi_local() * S.alpha_i)
        look = _lookup(N * b * S.I_t, N * b * S.R_t, N * b * S.D_t)
        e["emb_intra", "fwd"] = e["emb_intra", "bwd"] = intra_a2a(N * b * S.D_t * S.s_e)
        e["emb_dist", "fwd"] = e["emb_dist", "bwd"] = rail_a2a(N * b * out * S.s_e)
        perm = S.k * 2 * N * b * (S.D_t + out) * S.s_e / S.B_m
        e["permute", "fwd"] = e["permute", "bwd"] = perm
        if strategy == "sptt_tm":
            tm = S.k * N * b * (S.phi / S.F + S.t_t / (1 + beta))
            e["tm", "fwd"], e["tm", "bwd"] = tm, beta * tm
            e["tm_sync", "bwd"] = intra_a2a(S.M_t * S.s_e, rounds=2)
    e["lookup", "fwd"] = look
    e["lookup", "bwd"] = beta * look
    _rest(e, strategy)
    return e


@lru_cache(maxsize=None)
def byte_exprs(strategy: str) -> dict[str, Expr]:
    """Bytes one (busiest) rank sends per iteration, fwd + bwd: ``cross_host`` and ``intra_host``."""
    if strategy not in STRATEGIES:
        raise CostModelError(f"unknown strategy {strategy!r}", f"use one of {list(STRATEGIES)}")
    N, L, b = S.N, S.L, S.b
    W = N * L
    cross_frac, intra_flat = (N - 1) / N, (L - 1) / W
    if strategy in ("flat", "rw"):
        ids = b * S.I * S.s_id
        emb = (W if strategy == "rw" else 1) * b * S.D * S.s_e
        return {"cross_host": (ids + 2 * emb) * cross_frac, "intra_host": (ids + 2 * emb) * intra_flat}
    ids = N * b * S.I_t * S.s_id
    out = S.o_t if strategy == "sptt_tm" else S.D_t
    cross = ids * cross_frac + 2 * N * b * out * S.s_e * cross_frac
    if strategy == "twrw":
        ids_cross = N * b * S.I_t * S.s_id * cross_frac
        intra = ids * intra_flat + 2 * W * b * S.D_t * S.s_e * (L - 1) / L
        return {"cross_host": ids_cross + 2 * N * b * S.D_t * S.s_e * cross_frac, "intra_host": intra}
    intra = (ids + 2 * N * b * S.D_t * S.s_e) * (L - 1) / L
    if strategy == "sptt_tm":
        intra += 2 * S.M_t * S.s_e * (L - 1) / L
    return {"cross_host": cross, "intra_host": intra}


def formula(strategy: str, term: str | None = None, phase: str | None = None) -> Expr:
    """The symbolic time of `strategy`, or of one term and/or phase of it (s)."""
    exprs = strategy_exprs(strategy)
    if term is not None and term not in TERMS:
        raise CostModelError(f"unknown term {term!r}", f"use one of {list(TERMS)}")
    if phase is not None and phase not in PHASES:
        raise CostModelError(f"unknown phase {phase!r}", f"use one of {list(PHASES)}")
    return sp.Add(*[
        v for (t, p), v in exprs.items()
        if (term is None or t == term) and (phase is None or p == phase)
    ])
