"""`plan_towers`: which feature groups share a tower (pure: Detection x Topology -> TowerPlan).

User pins are applied first (a pinned feature pins its whole group); a partitioner assigns the
remaining groups (`partition.registry`). Groups (shared tables, shared id sources) are never
split. Tower t lives on host t mod N. Every tower starts as an identity tower (width out = width
in); `plan-feed` refines the plan for a compressing Tower Module before the graph changes.
"""
from __future__ import annotations

from typing import Any, Mapping

from dmt_compile.errors import PlanError
from dmt_compile.ir.detection import Detection, FeatureGroup
from dmt_compile.ir.plan import TowerDetail, TowerPlan
from dmt_compile.partition.balanced import balanced_partitioner
from dmt_compile.partition.interface import Partitioner, PartitionRequest, PartitionResult
from dmt_compile.partition.pins import Pins, normalize_pins, pinned_tower_count

__all__ = ["plan_towers"]


def _tower_count(detection: Detection, topology: Any, num_towers: int | None, pins: Pins,
                 notes: list[str]) -> int:
    groups = len(detection.groups)
    if num_towers is None:
        num_towers = pinned_tower_count(pins) or topology.num_hosts
        if num_towers > groups:
            notes.append(f"only {groups} tower(s): the model has {groups} feature group(s) that cannot be split "
                         f"further, fewer than the {num_towers} hosts")
            num_towers = groups
    if num_towers > groups:
        raise PlanError(
            f"{num_towers} towers requested but the model has only {groups} feature group(s) "
            f"({len(detection.features)} features; features sharing a table or ids form one group"
            + "".join(f"; {r}" for g in detection.groups for r in g.reasons if "table_ranges=" in r)
            + _tied(detection) + ")",
            f"ask for {groups} towers or fewer (num_towers={groups} in Python, --num-towers {groups} on the command line)",
        )
    return num_towers


def _tied(detection: Detection, most: int = 3) -> str:
    """Why the features of each group of several features share it (a shared table, shared ids), for the
    error: `; target, context: table t.weight is shared by several lookups`."""
    tied = [g for g in detection.groups if len(g.features) > 1 and g.reasons]
    parts = [f"; {', '.join(g.features)}: {'; '.join(r for r in g.reasons if 'table_ranges=' not in r)}"
             for g in tied[:most] if any("table_ranges=" not in r for r in g.reasons)]
    return "".join(parts) + (f"; and {len(tied) - most} more group(s)" if len(tied) > most else "")


def _pinned_groups(groups: tuple[FeatureGroup, ...], pinned: Mapping[str, int]) -> dict[int, int]:
    """group index -> tower for every group holding a pinned feature (all its pins must agree)."""
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
    return assignment


def _checked(result: PartitionResult, fixed: Mapping[int, int], groups: tuple[FeatureGroup, ...],
             num_towers: int) -> dict[int, int]:
    for gi, t in fixed.items():
        if result.assignment.get(gi) != t:
            raise PlanError(f"partitioner moved pinned group {gi} away from tower {t}", "report this as a bug")
    if set(result.assignment) != {g.index for g in groups} or not all(
            0 <= t < num_towers for t in result.assignment.values()):
        raise PlanError("partitioner returned an incomplete or invalid assignment", "report this as a bug")
    empty = [t for t in range(num_towers) if t not in result.assignment.values()]
    if empty:
        raise PlanError(f"tower(s) {empty} received no feature: every group was pinned elsewhere",
                        "pin fewer features or pass a smaller num_towers")
    return dict(result.assignment)


def _details(detection: Detection, assignment: dict[int, int], num_towers: int, num_hosts: int):
    details = []
    for t in range(num_towers):
        members = [g for g in detection.groups if assignment[g.index] == t]
        width = sum(g.width for g in members)
        details.append(TowerDetail(
            index=t, host=t % num_hosts,
            features=tuple(f for f in detection.features if any(f in g.features for g in members)),
            groups=tuple(g.index for g in members),
            tables=tuple(sorted({tb for g in members for tb in g.tables})),
            lookups=tuple(sorted(i for g in members for i in g.lookups)),
            width_in=width, table_elements=sum(g.table_elements for g in members), width_out=width,
        ))
    return tuple(details)


def _placement_notes(detection: Detection, assignment: dict[int, int], num_towers: int, num_hosts: int) -> list[str]:
    notes = []
    for g in detection.groups:
        if len(g.features) > 1 or len(g.lookups) > 1:
            notes.append(f"kept together in tower {assignment[g.index]}: {', '.join(g.features)} "
                         f"({'; '.join(g.reasons)})")
    if num_towers < num_hosts:
        notes.append(f"hosts {list(range(num_towers, num_hosts))} hold no tower (fewer towers than hosts)")
    if num_towers > num_hosts:
        notes.append(f"{num_towers} logical towers on {num_hosts} hosts: tower t runs on host t mod {num_hosts}")
    return notes


def plan_towers(
    detection: Detection, topology: Any, num_towers: int | None = None, pins: Pins = None, *,
    partitioner: Partitioner | None = None, strategy: str = "balanced", seed: int = 0,
    lookup_outputs: Mapping[int, list] | None = None,
) -> TowerPlan:
    """The tower plan for `detection` on `topology` (identity towers; see module docstring)."""
    notes: list[str] = []
    num_towers = _tower_count(detection, topology, num_towers, pins, notes)
    pinned = normalize_pins(pins, detection.features, num_towers)
    fixed = _pinned_groups(detection.groups, pinned)
    result = (partitioner or balanced_partitioner)(PartitionRequest(
        groups=detection.groups, num_towers=num_towers, fixed=dict(fixed), topology=topology, seed=seed,
        lookup_outputs=lookup_outputs, lookups=detection.lookups,
    ))
    assignment = _checked(result, fixed, detection.groups, num_towers)
    notes += list(result.notes)
    notes += _placement_notes(detection, assignment, num_towers, topology.num_hosts)
    if pinned and len(pinned) == len(detection.features):
        strategy = "pinned"
    elif pinned:
        strategy += "+pins"
    return TowerPlan(
        topology=str(topology), strategy=strategy,
        details=_details(detection, assignment, num_towers, topology.num_hosts),
        dense_features=detection.dense_features, notes=tuple(notes),
        metrics=tuple(sorted((k, float(v)) for k, v in result.metrics.items())),
    )
