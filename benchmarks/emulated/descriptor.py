"""What a timed configuration IS: the model descriptor every bench row carries.

A speedup means little without the model that produced it. For each run the descriptor states
(from the transformed single-process model the run was lowered from):

* ``compression_requested`` (``--compression``; None for flat / identity) and
  ``compression_effective``: the embedding elements per sample entering the towers over those
  leaving them (all towers), plus ``per_tower`` ``[width_in, width_out, ratio, feed]``. A tower
  narrower than c is clamped (one element per embedding it holds, or one in all): then
  ``compression_label`` says e.g. ``"c=13 (requested 16)"`` and ``compression_met`` is false.
* ``interaction``: what the global interaction now consumes: ``embedding_width`` (elements per
  sample from the towers), and for a hierarchical feed the rebuilt layers (``old -> new`` shapes)
  and ``vectors`` (old, new) of a pairwise interaction; ``unchanged`` for flat, identity and decoders.
* ``dense_parameters`` (everything but the embedding tables, Tower Modules and decoders included),
  ``tower_module_parameters`` and ``decoder_parameters``; ``feed`` (set of the towers' feeds); ``wire_dtype``.
"""
from __future__ import annotations

from typing import Any

__all__ = ["describe", "compression_label", "tower_info", "tables_per_host"]


def compression_label(requested: float | None, effective: float) -> str:
    """``"c=4"`` when met (within 1 %), else ``"c=4.33 (requested 4)"``; ``"c=1"`` without compression."""
    if requested is None or requested <= 1:
        return f"c={effective:.3g}"
    if abs(effective - requested) <= 0.01 * requested:
        return f"c={requested:g}"
    return f"c={effective:.3g} (requested {requested:g})"


def _table_names(dmt: Any) -> set[str]:
    splits = getattr(getattr(dmt, "table_splits", None), "splits", ())
    return {t for lk in dmt.detection.lookups for t in lk.tables} | {s.table for s in splits}


def _parameters(dmt: Any) -> tuple[int, int, int]:
    """(dense parameters incl. Tower Modules and decoders, Tower-Module, decoder parameters)."""
    tables = _table_names(dmt)
    dense = tm = dec = 0
    for name, p in dmt.graph_module.named_parameters():
        if name in tables or any(name.startswith(t + ".") for t in tables):
            continue
        dense += p.numel()
        tm += p.numel() if "_tm." in name else 0
        dec += p.numel() if "_decoder." in name else 0
    return dense, tm, dec


def _interaction(plan: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"embedding_width": sum(d.width_out or d.width_in for d in plan.details)}
    rebuilt = list(getattr(plan, "rebuilt", ()) or ())
    if not rebuilt:
        out["unchanged"] = True
        return out
    out["unchanged"] = False
    out["rebuilt"] = [{"target": r.target, "kind": r.kind, "old_shape": list(r.old_shape),
                       "new_shape": list(r.new_shape)} for r in rebuilt]
    vectors = next((list(r.vectors) for r in rebuilt if r.vectors), None)
    if vectors:
        out["vectors"] = vectors
    first = next((r for r in rebuilt if r.kind == "linear"), None)
    if first is not None:
        out["first_layer_in"] = [first.old_shape[-1], first.new_shape[-1]]
    return out


def describe(dmt: Any, requested: float | None, wire_dtype: str | None = None) -> dict[str, Any]:
    """The descriptor of one run's model (module docstring)."""
    details = dmt.plan.details
    w_in = sum(d.width_in for d in details)
    w_out = sum(d.width_out or d.width_in for d in details)
    effective = w_in / w_out if w_out else 1.0
    dense, tm, dec = _parameters(dmt)
    per_tower = [[d.width_in, d.width_out or d.width_in, d.width_in / (d.width_out or d.width_in),
                  getattr(d, "feed", None)] for d in details]
    met = requested is None or requested <= 1 or all(abs(r[2] - requested) <= 0.01 * requested for r in per_tower)
    return {
        "compression_requested": requested, "compression_effective": effective,
        "compression_label": compression_label(requested, effective), "compression_met": bool(met),
        "per_tower": per_tower, "interaction": _interaction(dmt.plan), "dense_parameters": dense,
        "tower_module_parameters": tm, "decoder_parameters": dec, "feed": sorted({str(getattr(d, "feed", None)) for d in details}),
        "wire_dtype": wire_dtype or "native", "tower_module": dmt.plan.tower_module,
    }


def tower_info(dmt: Any) -> list[dict[str, Any]]:
    """Per tower: host, features, ids per sample (one per lookup), widths in and out (elements), feed."""
    return [{"host": d.host, "features": len(d.features), "ids": len(d.lookups), "width_in": d.width_in,
             "width_out": d.width_out or d.width_in, "feed": getattr(d, "feed", None)} for d in dmt.plan.details]


def tables_per_host(plan: dict, world: int, local_size: int) -> list[int]:
    """Tables whose every shard sits on host h (whole or row-wise inside it), per host; spanning tables apart."""
    out = [0] * max(1, world // local_size)
    for ps in plan.values():
        hosts = {r // local_size for r in (ps.ranks or [])}
        if len(hosts) == 1:
            out[hosts.pop()] += 1
    return out
