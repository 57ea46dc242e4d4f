"""User pins: `towers={"feature": tower}` or a list of feature lists, validated against the model."""
from __future__ import annotations

from typing import Mapping, Sequence

from dmt_compile.errors import PlanError

__all__ = ["Pins", "normalize_pins", "pinned_tower_count"]

Pins = Mapping[str, int] | Sequence[Sequence[str]] | None


def pinned_tower_count(pins: Pins) -> int | None:
    """The tower count a list of feature lists implies (None for a dict or no pins)."""
    if isinstance(pins, Sequence) and not isinstance(pins, str) and pins:
        return len(pins)
    return None


def _items(pins: Pins) -> list[tuple[str, object]]:
    if isinstance(pins, Mapping):
        return list(pins.items())
    if isinstance(pins, Sequence) and not isinstance(pins, str):
        items: list[tuple[str, object]] = []
        for t, names in enumerate(pins):
            if isinstance(names, str) or not isinstance(names, Sequence):
                raise PlanError(
                    f"towers[{t}] must be a list of feature names, got {names!r}",
                    'write towers=[["f0", "f1"], ["f2"]] or towers={"f0": 0}',
                )
            items += [(name, t) for name in names]
        return items
    raise PlanError(
        f"towers must be a dict {{feature: tower}} or a list of lists, got {type(pins).__name__}",
        'write towers={"f0": 0, "f1": 1} or towers=[["f0"], ["f1"]]',
    )


def normalize_pins(pins: Pins, features: Sequence[str], num_towers: int) -> dict[str, int]:
    """Pins as {feature: tower}, validated against the known features and tower count."""
    if pins is None:
        return {}
    listed = pinned_tower_count(pins)
    if listed is not None and listed > num_towers:
        raise PlanError(
            f"towers lists {listed} towers but num_towers is {num_towers}",
            f"pass num_towers={listed} (or leave it out), or list at most {num_towers} towers",
        )
    out: dict[str, int] = {}
    known = set(features)
    for name, tower in _items(pins):
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
