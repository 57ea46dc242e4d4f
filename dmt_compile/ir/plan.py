"""TowerPlan: which features go to which tower and host, and why. Frozen and printable."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tabulate import tabulate

from dmt_compile.ir.feed import RebuiltLayer

__all__ = ["TowerPlan", "TowerDetail"]


@dataclass(frozen=True)
class TowerDetail:
    index: int
    host: int
    features: tuple[str, ...]
    groups: tuple[int, ...]
    tables: tuple[str, ...]
    lookups: tuple[int, ...]
    width_in: int  # elements looked up per sample
    table_elements: int  # rows x dim over the tower's tables
    width_out: int  # elements per sample leaving the tower (after its Tower Module)
    feed: str = "identity"  # identity | direct | hierarchical | decoder


@dataclass(frozen=True)
class TowerPlan:
    topology: str
    strategy: str
    details: tuple[TowerDetail, ...]
    dense_features: tuple[str, ...] = ()
    tower_module: str = "identity"
    compression: float = 1.0
    notes: tuple[str, ...] = field(default=())
    metrics: tuple[tuple[str, float], ...] = field(default=())  # e.g. affinity captured, from the partitioner
    rebuilt: tuple[RebuiltLayer, ...] = field(default=())  # hierarchical feed: layers rebuilt for the new width
    # strategy="auto": the candidate table and the choice (a dmt_compile.strategy.StrategyChoice), else None
    auto: Any = None

    @property
    def towers(self) -> tuple[tuple[str, ...], ...]:
        """Feature names of each tower, in tower order."""
        return tuple(d.features for d in self.details)

    @property
    def num_towers(self) -> int:
        return len(self.details)

    def tower_of(self, feature: str) -> int:
        for d in self.details:
            if feature in d.features:
                return d.index
        raise KeyError(feature)

    def balance(self) -> float:
        """max / mean of the towers' looked-up width (1.0 is perfect balance)."""
        loads = [d.width_in for d in self.details]
        mean = sum(loads) / len(loads)
        return max(loads) / mean if mean else 1.0

    def with_towers(self, details: tuple[TowerDetail, ...], **changes) -> "TowerPlan":
        return replace(self, details=details, **changes)

    def to_dict(self) -> dict:
        out = asdict(replace(self, auto=None))
        out.pop("auto")
        if self.auto is not None:  # strategy="auto" only: the candidate table
            out["auto"] = self.auto.to_dict()
        out["towers"] = [list(t) for t in self.towers]
        out["balance"] = round(self.balance(), 6)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    def __str__(self) -> str:
        rows = []
        for d in self.details:
            rows.append([
                d.index, d.host, len(d.features), _clip(", ".join(d.features)), d.width_in,
                d.width_out, d.feed, d.table_elements,
            ])
        head = (
            f"TowerPlan: {self.num_towers} towers on topology {self.topology} "
            f"(strategy {self.strategy}, tower module {self.tower_module}, compression {self.compression:g}, "
            f"balance max/mean {self.balance():.3f})"
        )
        table = tabulate(
            rows,
            headers=["tower", "host", "#feat", "features", "width in", "width out", "feed", "table elems"],
            tablefmt="simple",
        )
        lines = [head, table]
        if self.dense_features:
            lines.append("dense (data-parallel, not in towers): " + _clip(", ".join(self.dense_features), 200))
        lines += [f"metric: {k} = {v:.4g}" for k, v in self.metrics]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"rebuilt: {r.describe()}" for r in self.rebuilt]
        if self.auto is not None:
            lines.append(str(self.auto))
        return "\n".join(lines)


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
