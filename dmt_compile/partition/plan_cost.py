"""Predicted embedding-stage time of a tower plan vs the flat baseline (the cost model on a plan).

One computation for every command that prints it: `plan_config` turns a plan into the cost
report's `Config` with the plan's own towers (`PlanTowers`: hosts, widths in, widths out), and
`topo.cost_report.compare` prices it, for `dmt-compile dump` (this module) and `dmt-compile cost
--model` alike, so the same model, topology, Tower Module and compression print the same speedup.

Needs a topology with bandwidths (a preset such as `h100:16`); plain `NxL` specs have none and get
no prediction (no silent defaults). Pooling factors are not known statically: every lookup counts
as one id per sample.
"""
from __future__ import annotations

from typing import Any

from dmt_compile.topo.cost_report import Config, PlanTowers, compare, compare_table

__all__ = ["plan_towers", "plan_config", "predict_plan", "format_plan_cost"]


def plan_towers(plan: Any, pooling: float = 1.0) -> PlanTowers:
    """The towers of `plan` as the cost model prices them (a compressing plan adds its widths out)."""
    widths_in = tuple(float(d.width_in) for d in plan.details)
    ids = tuple(float(len(d.lookups)) * pooling for d in plan.details)
    out = () if plan.tower_module == "identity" else (
        (float(plan.compression), tuple(float(d.width_out) for d in plan.details)),)
    return PlanTowers(tuple(d.host for d in plan.details), widths_in, ids,
                      tuple(w * pooling for w in widths_in) if pooling != 1.0 else None, out)


def plan_config(plan: Any, detection: Any, batch_per_rank: int = 1024, pooling: float = 1.0,
                **config: Any) -> Config:
    """The cost report's `Config` of `plan`: the model's features for flat, the plan's towers for SPTT
    (its strategy: `sptt`, or `sptt_tm` at the plan's compression); `config` overrides any field."""
    compressed = plan.tower_module != "identity"
    fields = dict(feature_widths=tuple(float(g.width) for g in detection.groups), batch_per_rank=batch_per_rank,
                  ids_per_sample=tuple(float(len(g.lookups)) * pooling for g in detection.groups),
                  strategies=("flat", "sptt_tm" if compressed else "sptt"),
                  compressions=(float(plan.compression),) if compressed else (4.0,),
                  towers=plan_towers(plan, pooling))
    return Config(**{**fields, **config})


def predict_plan(plan: Any, detection: Any, topology: Any, batch_per_rank: int = 1024) -> dict[str, dict]:
    """{"flat": terms, "sptt" or "sptt_tm(c=C)": terms} in seconds per rank per step (fwd + bwd), each
    with its "speedup" over flat (`topo.cost_report.compare` on `plan_config`)."""
    return compare(topology, plan_config(plan, detection, batch_per_rank))


def format_plan_cost(plan: Any, detection: Any, topology: Any, batch_per_rank: int = 1024,
                     width: int | None = 120) -> str:
    """The cost model's prediction for `plan`: the table `dmt-compile cost` prints (every term on its own,
    `topo.cost_report.compare_table`), kept within `width` columns."""
    if getattr(topology, "inter_bw", None) is None:
        return (f"predicted cost: topology {topology} has no bandwidths; use a preset (e.g. h100:16) "
                "to see the cost model's prediction")
    result = predict_plan(plan, detection, topology, batch_per_rank)
    tm = "" if plan.tower_module == "identity" else f"{plan.tower_module} Tower Module, "
    return (f"predicted embedding stage per rank per step of this plan's towers on {topology.name or topology} "
            f"({topology.world_size} GPUs, batch {batch_per_rank} per rank, {tm}cost model, fwd+bwd; "
            f"`dmt-compile cost --model` prices the same towers):\n{compare_table(result, width)}")
