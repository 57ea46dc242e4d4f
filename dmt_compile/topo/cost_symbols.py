"""Symbols (each with a unit) and tunable parameters of the cost model.

Every sympy symbol the cost model uses is listed in :data:`SYMBOLS` with its unit and
meaning; ``docs/COST_MODEL.md`` prints the same table (:func:`symbol_table`). Times are
seconds, sizes bytes, bandwidths bytes/s per rank per direction.

:class:`CostParams` holds the parameters that are not properties of the cluster (link
efficiency, half-performance message size n½, per-message gap, congestion, dtype sizes).
Its defaults are illustrative values (assumptions to calibrate: `dmt-compile cost --fit`); :meth:`CostParams.ideal` switches every non-ideality off (TorchRec's view).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import sympy as sp

from dmt_compile.errors import CostModelError

__all__ = ["SYMBOLS", "S", "CostParams", "symbol_table", "unit_of"]

KiB = 1024

# name -> (unit, description); the Symbol objects are built below in the same order.
_SPEC: dict[str, tuple[str, str]] = {
    "N": ("host", "number of hosts"),
    "L": ("rank/host", "ranks (GPUs) per host"),
    "b": ("sample", "per-rank batch (samples per rank per iteration)"),
    "D": ("element/sample", "sum of embedding widths of all sparse features"),
    "I": ("id/sample", "ids per sample over all features (sum of pooling factors)"),
    "R": ("element/sample", "embedding elements read per sample (sum of pooling x width)"),
    "D_t": ("element/sample", "input width of the busiest host's towers"),
    "I_t": ("id/sample", "ids per sample of the busiest host's towers"),
    "R_t": ("element/sample", "elements read per sample on the busiest host"),
    "o_t": ("element/sample", "Tower-Module output width of the busiest host (D_t/c)"),
    "phi": ("FLOP/sample", "Tower-Module forward FLOPs per sample on the busiest host"),
    "M_t": ("element", "Tower-Module parameters on the busiest host (gradient all-reduce)"),
    "s_e": ("byte/element", "bytes per embedding / activation element"),
    "s_id": ("byte/id", "bytes per id (TorchRec: int64 = 8)"),
    "B_i": ("byte/s", "intra-host (NVLink) bandwidth per rank per direction"),
    "B_e": ("byte/s", "inter-host (NIC) bandwidth per rank per direction"),
    "B_m": ("byte/s", "device memory (HBM) bandwidth for lookups and permutes"),
    "F": ("FLOP/s", "dense compute rate per rank for Tower Modules"),
    "alpha_i": ("s", "start-up latency of one intra-host collective"),
    "alpha_e": ("s", "start-up latency of one cross-host collective (plus spanned levels)"),
    "g_i": ("s/message", "per-message gap on NVLink (LogGP g)"),
    "g_e": ("s/message", "per-message gap on the network (LogGP g)"),
    "n_i": ("byte", "NVLink half-performance message size n½"),
    "n_e": ("byte", "network half-performance message size n½"),
    "eta_i": ("1", "achievable fraction of peak NVLink bandwidth"),
    "eta_e": ("1", "achievable fraction of peak NIC bandwidth"),
    "kappa_c": ("1", "congestion coefficient: κ = 1 + kappa_c·log2(fan-in/q_0)"),
    "q_0": ("rank", "fan-in below which there is no congestion"),
    "sigma": ("1", "network taper: worst tier slowdown from oversubscription (>= 1)"),
    "beta": ("1", "backward/forward compute ratio (TorchRec: 2)"),
    # compute of the rest of the step (cost_exprs "dense", "decoder", "optimizer"; 0 = left out)
    "t_d": ("s/sample", "dense part (bottom MLP, interaction, top MLP, loss) fwd + bwd time per sample, one device"),
    "t_x": ("s/sample", "decoders' fwd + bwd time per sample (decoder feed)"),
    "t_t": ("s/sample", "Tower-Module fwd + bwd time per sample (measured; adds to phi/F)"),
    "t_l": ("s/id", "lookup fwd + bwd time per id beyond the memory template (measured)"),
    "t_o": ("s", "optimizer step and fixed per-step work of one rank"),
    "M_d": ("element", "data-parallel parameters (gradient all-reduce)"),
    "k": ("rank/device", "ranks sharing one core or device: compute runs 1/k as fast"),
    "n_c": ("1", "collectives per id exchange (ours: counts, lengths, values = 3)"),
}

#: name -> (Symbol, unit, description)
SYMBOLS: dict[str, tuple[sp.Symbol, str, str]] = {
    name: (sp.Symbol(name, positive=True), unit, desc) for name, (unit, desc) in _SPEC.items()
}


class _Namespace:
    """Attribute access to the symbols: ``S.N``, ``S.B_e``, ..."""

    def __getattr__(self, name: str) -> sp.Symbol:
        try:
            return SYMBOLS[name][0]
        except KeyError:
            raise AttributeError(name) from None


S = _Namespace()


def unit_of(symbol: sp.Symbol) -> str:
    """The unit of a cost-model symbol."""
    return SYMBOLS[symbol.name][1]


def symbol_table() -> list[tuple[str, str, str]]:
    """(symbol, unit, meaning) rows, in definition order."""
    return [(name, unit, desc) for name, (_, unit, desc) in SYMBOLS.items()]


@dataclass(frozen=True)
class CostParams:
    """Tunable, non-topology parameters (illustrative defaults: assumptions to calibrate, docs/COST_MODEL.md).

    ============== ========= ======= =================================================
    field          unit      default meaning
    ============== ========= ======= =================================================
    eta_intra      1         0.8     achievable fraction of NVLink peak
    eta_inter      1         0.9     achievable fraction of NIC peak
    n_half_intra   byte      32 KiB  NVLink half-performance message size
    n_half_inter   byte      64 KiB  NIC half-performance message size
    gap_intra      s/msg     0.2e-6  per-message gap, NVLink
    gap_inter      s/msg     0.5e-6  per-message gap, network
    congestion     1         0.0     kappa_c; 0 = no incast penalty (optimistic for flat)
    fan_in_ref     rank      8       fan-in where congestion starts
    bwd_multiplier 1         2.0     backward compute / forward compute (TorchRec)
    id_bytes       byte/id   8       int64 ids (TorchRec BIGINT_DTYPE)
    ranks_per_device rank    1.0     k: ranks sharing one core/device (an emulation on few cores)
    id_collectives 1         1.0     n_c: collectives per id exchange (our runtime: 3)
    intra_latency  s         None    override the topology's intra-host latency
    inter_latency  s         None    override the topology's cross-host latency
    hbm_bw         byte/s    None    override the topology's HBM bandwidth
    flop_rate      FLOP/s    None    override the topology's compute rate
    ============== ========= ======= =================================================
    """

    eta_intra: float = 0.8
    eta_inter: float = 0.9
    n_half_intra: float = 32 * KiB
    n_half_inter: float = 64 * KiB
    gap_intra: float = 0.2e-6
    gap_inter: float = 0.5e-6
    congestion: float = 0.0
    fan_in_ref: float = 8.0
    bwd_multiplier: float = 2.0
    id_bytes: float = 8.0
    ranks_per_device: float = 1.0
    id_collectives: float = 1.0
    intra_latency: float | None = None
    inter_latency: float | None = None
    hbm_bw: float | None = None
    flop_rate: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.default is None:
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v or v < 0 or v == float("inf"):
                raise CostModelError(
                    f"cost parameter {f.name} must be a finite non-negative number, got {v!r}",
                    "see CostParams' docstring for units and defaults",
                )
        for name in ("eta_intra", "eta_inter"):
            if not 0 < getattr(self, name) <= 1:
                raise CostModelError(
                    f"{name} must be in (0, 1], got {getattr(self, name)!r}",
                    "give the achievable fraction of peak bandwidth, e.g. 0.9",
                )
        for name in ("fan_in_ref", "id_bytes", "hbm_bw", "flop_rate", "ranks_per_device", "id_collectives"):
            if getattr(self, name) == 0:
                raise CostModelError(f"{name} must be positive", f"give a positive {name}")

    @classmethod
    def ideal(cls, **overrides: Any) -> "CostParams":
        """Full peak bandwidth, no gap, no n½, no congestion (latency still from topology)."""
        base = dict(eta_intra=1.0, eta_inter=1.0, n_half_intra=0.0, n_half_inter=0.0,
                    gap_intra=0.0, gap_inter=0.0, congestion=0.0)
        base.update(overrides)
        return cls(**base)

    def with_overrides(self, **overrides: Any) -> "CostParams":
        unknown = sorted(set(overrides) - {f.name for f in fields(self)})
        if unknown:
            raise CostModelError(
                f"unknown cost parameter(s) {unknown}",
                f"use one of {sorted(f.name for f in fields(self))}",
            )
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
