"""TowerPlan: which features go to which tower and host, and why. Frozen and printable."""
from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from tabulate import tabulate

from dmt_compile.ir.feed import RebuiltLayer
from dmt_compile.ir.plan_text import PLAN_ALIGN, PLAN_COLUMNS, features_width, plan_details, plan_header, plan_rows

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
        """The plan table (`ir.plan_text.PLAN_COLUMNS`: every feature listed, lists wrap) and the notes,
        each said once."""
        return self.format()

    def format(self, width: int = 120) -> str:
        """`str(plan)` at most about `width` columns (the CLI passes the terminal's width)."""
        table = tabulate(plan_rows(self, features_width(width)), headers=PLAN_COLUMNS, tablefmt="simple",
                         disable_numparse=True, colalign=PLAN_ALIGN)
        lines = [textwrap.fill(plan_header(self), width, subsequent_indent="    "), table, *plan_details(self, width)]
        if self.auto is not None:
            lines.append(str(self.auto))
        return "\n".join(lines)
