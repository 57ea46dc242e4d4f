"""Predicted embedding-stage time of a tower plan vs the flat baseline (the cost model on a plan).

Needs a topology with bandwidths (a preset such as `h100:16`); plain `NxL` specs have none and get
no prediction (no silent defaults). Pooling factors are not known statically: every lookup counts
as one id per sample.
"""
from __future__ import annotations

from typing import Any

from tabulate import tabulate

from dmt_compile.topo.cost_model import predict_flat, predict_sptt

__all__ = ["predict_plan", "format_plan_cost"]


def predict_plan(plan: Any, detection: Any, topology: Any, batch_per_rank: int = 1024) -> dict[str, dict]:
    """{"flat": terms, "sptt": terms} in seconds per rank per step (fwd + bwd)."""
    widths = [g.width for g in detection.groups]
    ids = [float(len(g.lookups)) for g in detection.groups]
    flat = predict_flat(topology, batch_per_rank=batch_per_rank, feature_widths=widths, ids_per_sample=ids)
    compressed = plan.tower_module != "identity"
    sptt = predict_sptt(
        topology, batch_per_rank=batch_per_rank,
        tower_in_widths=[d.width_in for d in plan.details],
        ids_per_sample=[float(len(d.lookups)) for d in plan.details],
        tower_out_widths=[d.width_out for d in plan.details] if compressed else None,
        tower_hosts=[d.host for d in plan.details],
    )
    return {"flat": flat, "sptt" if not compressed else f"sptt+{plan.tower_module}(c={plan.compression:g})": sptt}


def format_plan_cost(plan: Any, detection: Any, topology: Any, batch_per_rank: int = 1024) -> str:
    if getattr(topology, "inter_bw", None) is None:
        return (f"predicted cost: topology {topology} has no bandwidths; use a preset (e.g. h100:16) "
                "to see the cost model's prediction")
    result = predict_plan(plan, detection, topology, batch_per_rank)
    flat_total = result["flat"]["total"]
    rows = []
    for name, terms in result.items():
        rows.append([name, terms["id_dist"] * 1e6, terms["emb_dist"] * 1e6, terms["comm"] * 1e6,
                     terms["compute"] * 1e6, terms["total"] * 1e6, f"{flat_total / terms['total']:.2f}x"])
    table = tabulate(rows, headers=["strategy", "id_dist µs", "emb_dist µs", "comm µs", "compute µs", "total µs",
                                    "speedup"], tablefmt="simple", floatfmt=".1f")
    return (f"predicted embedding stage per rank per step of this plan's towers on {topology.name or topology} "
            f"({topology.world_size} GPUs, batch {batch_per_rank} per rank, cost model, fwd+bwd; `cost` assumes "
            f"towers of equal width instead):\n{table}")
