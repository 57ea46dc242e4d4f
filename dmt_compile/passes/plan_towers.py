"""plan-towers: choose which feature groups share a tower (analysis; the graph is untouched).

Runs `partition.plan_towers` with the chosen partitioner. Partitioners that measure the model
(`learned`) get each lookup's outputs on the calibration batches (the example batch when none
were given).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch.fx as fx

from dmt_compile.errors import PlanError
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.partition.calibration import collect_lookup_outputs
from dmt_compile.partition.plan_towers import plan_towers
from dmt_compile.partition.registry import PARTITIONERS, get_partitioner, needs_calibration
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.passes.option_field import option

__all__ = ["PlanTowers"]


@dataclass(frozen=True)
class PlanTowers(Pass):
    name = "plan-towers"
    needs = (Detection,)
    produces = (TowerPlan,)
    option_error = PlanError

    num_towers: int | None = field(default=None, metadata=option(
        "number of towers", minimum=1, example=2, aliases=("--towers",),
        default_text="one per host, fewer when the model has fewer feature groups"))
    towers: Mapping[str, int] | Sequence[Sequence[str]] | None = field(default=None, metadata=option(
        'features pinned to towers: {"feature": tower} or a list of feature lists (a pinned feature takes its '
        "whole group along)", default_text="none pinned", example={"C1": 0}))
    partitioner: str = field(default="balanced", metadata=option(
        "how feature groups are spread over towers: balanced (even widths), learned (feature affinity from "
        "the model's embeddings on the calibration batches), random or contiguous", choices=PARTITIONERS))
    seed: int = field(default=0, metadata=option(
        "seed of the partitioners that use randomness (the command line also seeds torch with it, for new "
        "Tower Module weights)", example=0))

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        detection = ctx.get(Detection)
        partitioner = get_partitioner(self.partitioner)
        batches = list(ctx.calibration)
        if not batches and needs_calibration(partitioner):
            batches = [ctx.flat_inputs]
        outputs = collect_lookup_outputs(gm, detection, batches) if batches else None
        plan = plan_towers(detection, ctx.topology, self.num_towers, self.towers, partitioner=partitioner,
                           strategy=self.partitioner, seed=self.seed, lookup_outputs=outputs)
        return PassResult(gm, False, (plan,))

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        plan, detection = ctx.get(TowerPlan), ctx.get(Detection)
        placed = sorted(g for d in plan.details for g in d.groups)
        if placed != [g.index for g in detection.groups]:
            raise AssertionError(f"plan places groups {placed}, the model has {len(detection.groups)}")
