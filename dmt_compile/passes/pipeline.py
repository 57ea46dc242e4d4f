"""`default_pipeline(options)`: the compiler's passes, in order; their option fields are `transform`'s options."""
from __future__ import annotations

from dmt_compile.passes.base import Pass
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.flat_sequences import BatchMajorLookups
from dmt_compile.passes.insert_tower_modules import InsertTowerModules
from dmt_compile.passes.plan_feed import PlanFeed
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.split_collections import SplitCollections
from dmt_compile.passes.split_tables import SplitTables
from dmt_compile.passes.sptt_rewrite import SpttRewrite

__all__ = ["default_pipeline", "PIPELINE"]

PIPELINE: tuple[type[Pass], ...] = (
    SplitCollections,  # one lookup per table for torchrec Embedding(Bag)Collections
    BatchMajorLookups,  # flattened [B*L] ids looked up per sample ([B, L]); before split-tables, which
    SplitTables,  # then sees a [B, F] id matrix: one table per field for concatenated tables with offsets
    Detect,  # find lookups, their id sources and feature groups
    PlanTowers,  # choose towers (pure analysis)
    PlanFeed,  # decide each tower's feed; the plan is final
    SpttRewrite,  # boundary nodes + identity Tower Modules
    InsertTowerModules,  # apply the feed plan: compressing TMs, direct feed or decoders
)


def default_pipeline(options: TransformOptions | None = None) -> list[Pass]:  # noqa: F821 (options.py imports this)
    """The compiler pipeline, in order (capture runs before it); each pass gets the `TransformOptions` it declares."""
    return [cls(**options.for_pass(cls)) if options is not None else cls() for cls in PIPELINE]
