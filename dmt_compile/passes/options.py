"""`TransformOptions`: every option of `transform`, validated once, frozen.

`default_pipeline(options)` (`passes/pipeline.py`) turns it into the pass list; each pass receives only the
fields it uses, as its own dataclass fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dmt_compile.errors import PlanError, TowerModuleError
from dmt_compile.partition.registry import PARTITIONERS
from dmt_compile.passes.plan_feed import PlanFeed

__all__ = ["TransformOptions", "MAX_COMPRESSION"]

MAX_COMPRESSION = 16.0  # the paper's TMs compress up to 16x


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class TransformOptions:
    num_towers: int | None = None  # default: one per host
    towers: Any = None  # pins: {"feature": tower} or a list of feature lists
    tower_module: str = "identity"  # identity | linear | dot | cross | wukong
    compression: float | None = None  # ratio c of a compressing Tower Module (default 4)
    feed: str = "auto"  # auto | direct | decoder
    partitioner: str = "balanced"  # balanced | learned | random | contiguous
    seed: int = 0  # for partitioners that use randomness
    table_ranges: Any = None  # {table: per-field row ranges} for concatenated tables with pre-offset ids

    def validated(self) -> "TransformOptions":
        """A copy with defaults filled in (compression); raises a typed error naming a bad option."""
        PlanFeed(self.tower_module, 1.0, self.feed).check_fields()  # the pass validates its own fields
        if self.partitioner not in PARTITIONERS:
            raise PlanError(f"unknown partitioner {self.partitioner!r}",
                            "choose one of: " + ", ".join(sorted(PARTITIONERS)))
        if self.num_towers is not None and (not _is_int(self.num_towers) or self.num_towers < 1):
            raise PlanError(f"num_towers must be a positive integer, got {self.num_towers!r}", "pass e.g. num_towers=2")
        if not _is_int(self.seed):
            raise PlanError(f"seed must be an integer, got {self.seed!r}", "pass e.g. seed=0")
        return TransformOptions(self.num_towers, self.towers, self.tower_module, self._compression(), self.feed,
                                self.partitioner, self.seed, self.table_ranges)

    def _compression(self) -> float:
        c = self.compression
        if self.tower_module == "identity":
            if c not in (None, 1, 1.0):
                raise TowerModuleError(
                    f"the identity tower module cannot compress (compression={c})",
                    'use tower_module="linear" (or another compressing module) with compression > 1',
                )
            return 1.0
        c = 4.0 if c is None else c
        if not isinstance(c, (int, float)) or isinstance(c, bool) or not 1 <= c <= MAX_COMPRESSION:
            raise TowerModuleError(f"compression must be a number in [1, {MAX_COMPRESSION:g}], got {c!r}",
                                   "DMT compresses up to 16x; e.g. compression=4")
        return float(c)
