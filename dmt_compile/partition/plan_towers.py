"""plan: choose which feature groups share a tower (pure analysis; the graph is untouched).

User pins are applied first (a pinned feature pins its whole group); a *partitioner* assigns the
remaining groups. Default "balanced": longest-processing-time greedy by looked-up width per
sample (the term that drives lookup, exchange and Tower-Module cost), ties by table size.
Other partitioners ("learned", "random", "contiguous") plug in through `PARTITIONERS` with the
same `PartitionRequest -> PartitionResult` interface. Groups (shared tables, shared id sources)
are never split. Tower t lives on host t mod N.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.fx as fx

from dmt_compile.errors import PlanError
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.passes.detect import Detection
from dmt_compile.ir.plan import TowerDetail, TowerPlan

__all__ = [
    "PlanTowers", "plan_towers", "normalize_pins", "PartitionRequest", "PartitionResult",
    "balanced_partitioner", "PARTITIONERS", "get_partitioner", "collect_lookup_outputs",
]

Pins = Mapping[str, int] | Sequence[Sequence[str]] | None


@dataclass(frozen=True)
class PartitionRequest:
    """What a partitioner sees: feature groups (never split), tower count, pinned groups, data."""

    groups: tuple  # tuple[FeatureGroup, ...]
    num_towers: int
    fixed: Mapping[int, int]  # group index -> tower, from user pins (must be honoured)
    topology: Any
    seed: int = 0
    # lookup index -> that lookup's output on each calibration batch (None without calibration)
    lookup_outputs: Mapping[int, list] | None = None
    lookups: tuple = ()  # tuple[Lookup, ...] (index, features, width, ...)


@dataclass(frozen=True)
class PartitionResult:
    assignment: Mapping[int, int]  # group index -> tower, for every group
    notes: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)


Partitioner = Callable[[PartitionRequest], PartitionResult]


def balanced_partitioner(req: PartitionRequest) -> PartitionResult:
    """Longest-processing-time greedy by looked-up width per sample, ties by table size."""
    assignment = dict(req.fixed)
    width = [0] * req.num_towers
    elems = [0] * req.num_towers
    for gi, t in assignment.items():
        width[t] += req.groups[gi].width
        elems[t] += req.groups[gi].table_elements
    free = sorted((g for g in req.groups if g.index not in assignment),
                  key=lambda g: (-g.width, -g.table_elements, g.index))
    for g in free:
        used = set(assignment.values())
        t = min(range(req.num_towers), key=lambda i: (i in used, width[i], elems[i], i))
        assignment[g.index] = t
        width[t] += g.width
        elems[t] += g.table_elements
    return PartitionResult(assignment)


# name -> partitioner, or "module:function" loaded on first use (the learned one needs calibration)
PARTITIONERS: dict[str, Partitioner | str] = {
    "balanced": balanced_partitioner,
    "learned": "dmt_compile.partition.learned:learned_partitioner",
    "random": "dmt_compile.partition.learned:random_partitioner",
    "contiguous": "dmt_compile.partition.learned:contiguous_partitioner",
}


def get_partitioner(name: str) -> Partitioner:
    entry = PARTITIONERS.get(name)
    if entry is None:
        raise PlanError(f"unknown partitioner {name!r}", "choose one of: " + ", ".join(sorted(PARTITIONERS)))
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise PlanError(f"partitioner {name!r} is not available ({exc})", "use partitioner='balanced'") from exc
    return entry


class _LookupRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, wanted: dict[str, int]):
        super().__init__(gm)
        self.wanted = wanted
        self.seen: dict[int, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted:
            value = out.values() if type(out).__name__ == "KeyedTensor" else out
            self.seen[self.wanted[n.name]] = value.detach()
        return out


def collect_lookup_outputs(gm: fx.GraphModule, detection, flat_batches: Sequence[list]) -> dict[int, list]:
    """Run the (not yet rewritten) graph on calibration batches; each lookup's outputs per batch."""
    wanted = {lk.node: lk.index for lk in detection.lookups}
    out: dict[int, list] = {i: [] for i in wanted.values()}
    was_training = gm.training
    gm.eval()
    try:
        with torch.no_grad():
            for flat in flat_batches:
                rec = _LookupRecorder(gm, wanted)
                rec.run(*flat)
                for i, v in rec.seen.items():
                    out[i].append(v)
    finally:
        gm.train(was_training)
    return out


def normalize_pins(pins: Pins, features: Sequence[str], num_towers: int) -> dict[str, int]:
    """Pins as {feature: tower}, validated against the known features and tower count."""
    if pins is None:
        return {}
    out: dict[str, int] = {}
    if isinstance(pins, Mapping):
        items = list(pins.items())
    elif isinstance(pins, Sequence) and not isinstance(pins, str):
        items = []
        for t, names in enumerate(pins):
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise PlanError(
                    f"towers[{t}] must be a list of feature names, got {names!r}",
                    'write towers=[["f0", "f1"], ["f2"]] or towers={"f0": 0}',
                )
            items += [(name, t) for name in names]
        if len(pins) > num_towers:
            num_towers = len(pins)
    else:
        raise PlanError(
            f"towers must be a dict {{feature: tower}} or a list of lists, got {type(pins).__name__}",
            'write towers={"f0": 0, "f1": 1} or towers=[["f0"], ["f1"]]',
        )
    known = set(features)
    for name, tower in items:
        if name not in known:
            raise PlanError(
                f"pinned feature {name!r} is not a sparse feature of this model",
                "known features: " + ", ".join(features[:40]) + (" ..." if len(features) > 40 else ""),
            )
        if name in out:
            raise PlanError(
                f"feature {name!r} is pinned twice (to towers {out[name]} and {tower})",
                "pin each feature to one tower",
            )
        if not isinstance(tower, int) or isinstance(tower, bool) or not 0 <= tower < num_towers:
            raise PlanError(
                f"feature {name!r} is pinned to tower {tower!r}, which does not exist",
                f"towers are numbered 0..{num_towers - 1}; pass num_towers= to have more",
            )
        out[name] = tower
    return out


def plan_towers(
    detection: Detection, topology: Any, num_towers: int | None = None, pins: Pins = None, *,
    partitioner: Partitioner | None = None, strategy: str = "balanced", seed: int = 0,
    lookup_outputs: Mapping[int, list] | None = None,
) -> TowerPlan:
    """The default balanced tower plan for `detection` on `topology`."""
    groups = detection.groups
    notes: list[str] = []
    if num_towers is None:
        num_towers = len(pins) if isinstance(pins, Sequence) and not isinstance(pins, str) and pins else topology.num_hosts
        if num_towers > len(groups):
            notes.append(
                f"only {len(groups)} tower(s): the model has {len(groups)} feature group(s) that cannot be split "
                f"further, fewer than the {num_towers} hosts"
            )
            num_towers = len(groups)
    if not isinstance(num_towers, int) or isinstance(num_towers, bool) or num_towers < 1:
        raise PlanError(f"num_towers must be a positive integer, got {num_towers!r}", "pass e.g. num_towers=2")
    if num_towers > len(groups):
        raise PlanError(
            f"{num_towers} towers requested but the model has only {len(groups)} feature group(s) "
            f"({len(detection.features)} features; features sharing a table or ids form one group)",
            f"pass num_towers={len(groups)} or fewer",
        )
    pinned = normalize_pins(pins, detection.features, num_towers)
    assignment: dict[int, int] = {}
    for g in groups:
        targets = {pinned[f] for f in g.features if f in pinned}
        if len(targets) > 1:
            why = "; ".join(g.reasons) or "they form one group"
            raise PlanError(
                f"features {', '.join(f for f in g.features if f in pinned)} are pinned to different towers "
                f"{sorted(targets)} but must share a tower ({why})",
                "pin all features of a group to the same tower",
            )
        if targets:
            assignment[g.index] = targets.pop()
    partitioner = partitioner or balanced_partitioner
    result = partitioner(PartitionRequest(
        groups=groups, num_towers=num_towers, fixed=dict(assignment), topology=topology, seed=seed,
        lookup_outputs=lookup_outputs, lookups=detection.lookups,
    ))
    for gi, t in assignment.items():
        if result.assignment.get(gi) != t:
            raise PlanError(f"partitioner moved pinned group {gi} away from tower {t}", "report this as a bug")
    if set(result.assignment) != {g.index for g in groups} or not all(
        0 <= t < num_towers for t in result.assignment.values()
    ):
        raise PlanError("partitioner returned an incomplete or invalid assignment", "report this as a bug")
    assignment = dict(result.assignment)
    notes += list(result.notes)
    empty = [t for t in range(num_towers) if not _has_any(assignment, t)]
    if empty:
        raise PlanError(
            f"tower(s) {empty} received no feature: every group was pinned elsewhere",
            "pin fewer features or pass a smaller num_towers",
        )
    details = []
    for t in range(num_towers):
        members = [g for g in groups if assignment[g.index] == t]
        feats = tuple(f for f in detection.features if any(f in g.features for g in members))
        details.append(
            TowerDetail(
                index=t, host=t % topology.num_hosts, features=feats,
                groups=tuple(g.index for g in members),
                tables=tuple(sorted({tb for g in members for tb in g.tables})),
                lookups=tuple(sorted(i for g in members for i in g.lookups)),
                width_in=sum(g.width for g in members),
                table_elements=sum(g.table_elements for g in members),
            )
        )
    for g in groups:
        if len(g.features) > 1 or len(g.lookups) > 1:
            notes.append(f"kept together in tower {assignment[g.index]}: {', '.join(g.features)} ({'; '.join(g.reasons)})")
    if num_towers < topology.num_hosts:
        notes.append(f"hosts {list(range(num_towers, topology.num_hosts))} hold no tower (fewer towers than hosts)")
    if num_towers > topology.num_hosts:
        notes.append(f"{num_towers} logical towers on {topology.num_hosts} hosts: tower t runs on host t mod {topology.num_hosts}")
    if pinned and len(pinned) == len(detection.features):
        strategy = "pinned"
    elif pinned:
        strategy += "+pins"
    return TowerPlan(
        topology=str(topology), strategy=strategy, details=tuple(details),
        dense_features=detection.dense_features, notes=tuple(notes),
        metrics=tuple(sorted((k, float(v)) for k, v in result.metrics.items())),
    )


def _has_any(assignment: dict[int, int], tower: int) -> bool:
    return tower in assignment.values()


class PlanTowers(Pass):
    name = "plan"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        opts = ctx.options
        name = opts.get("partitioner", "balanced")
        partitioner = get_partitioner(name)
        calibration = opts.get("calibration_flat")
        outputs = collect_lookup_outputs(gm, ctx.detection, calibration) if calibration else None
        if getattr(partitioner, "needs_calibration", False) and outputs is None:
            outputs = collect_lookup_outputs(gm, ctx.detection, [ctx.flat_inputs])
        ctx.plan = plan_towers(
            ctx.detection, ctx.topology, opts.get("num_towers"), opts.get("towers"),
            partitioner=partitioner, strategy=name, seed=opts.get("seed", 0), lookup_outputs=outputs,
        )
        return PassResult(gm, False)
