"""plan-towers: choose which feature groups share a tower (analysis; the graph is untouched).

Runs `partition.plan_towers` with the chosen partitioner. Partitioners that measure the model
(`learned`) get each lookup's outputs on the calibration batches (the example batch when none
were given).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from dmt_compile.ir.detection import Detection
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.partition.calibration import collect_lookup_outputs
from dmt_compile.partition.plan_towers import plan_towers
from dmt_compile.partition.registry import get_partitioner, needs_calibration
from dmt_compile.passes.base import Pass, PassContext, PassResult

__all__ = ["PlanTowers"]


@dataclass(frozen=True)
class PlanTowers(Pass):
    name = "plan-towers"
    needs = (Detection,)
    produces = (TowerPlan,)

    num_towers: int | None = None  # default: one per host (fewer when the model has fewer groups)
    pins: Any = None  # {"feature": tower} or a list of feature lists
    partitioner: str = "balanced"  # balanced | learned | random | contiguous
    seed: int = 0  # for partitioners that use randomness

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        detection = ctx.get(Detection)
        partitioner = get_partitioner(self.partitioner)
        batches = list(ctx.calibration)
        if not batches and needs_calibration(partitioner):
            batches = [ctx.flat_inputs]
        outputs = collect_lookup_outputs(gm, detection, batches) if batches else None
        plan = plan_towers(detection, ctx.topology, self.num_towers, self.pins, partitioner=partitioner,
                           strategy=self.partitioner, seed=self.seed, lookup_outputs=outputs)
        return PassResult(gm, False, (plan,))

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        plan, detection = ctx.get(TowerPlan), ctx.get(Detection)
        placed = sorted(g for d in plan.details for g in d.groups)
        if placed != [g.index for g in detection.groups]:
            raise AssertionError(f"plan places groups {placed}, the model has {len(detection.groups)}")
