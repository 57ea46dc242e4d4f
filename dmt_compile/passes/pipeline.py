"""`default_pipeline(options)`: the compiler's passes, in order, from one `TransformOptions`."""
from __future__ import annotations

from dmt_compile.passes.base import Pass
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.flat_sequences import BatchMajorLookups
from dmt_compile.passes.insert_tower_modules import InsertTowerModules
from dmt_compile.passes.options import TransformOptions
from dmt_compile.passes.plan_feed import PlanFeed
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.split_collections import SplitCollections
from dmt_compile.passes.split_tables import SplitTables
from dmt_compile.passes.sptt_rewrite import SpttRewrite

__all__ = ["default_pipeline"]


def default_pipeline(options: TransformOptions) -> list[Pass]:
    """The compiler pipeline, in order (capture runs before it)."""
    o = options
    return [
        SplitCollections(),  # one lookup per table for torchrec Embedding(Bag)Collections
        SplitTables(o.table_ranges),  # one table per field for concatenated tables with per-field offsets
        BatchMajorLookups(),  # flattened [B*L] sequence ids looked up per sample ([B, L])
        Detect(),  # find lookups, their id sources and feature groups
        PlanTowers(o.num_towers, o.towers, o.partitioner, o.seed),  # choose towers (pure analysis)
        PlanFeed(o.tower_module, o.compression, o.feed),  # decide each tower's feed; the plan is final
        SpttRewrite(),  # boundary nodes + identity Tower Modules
        InsertTowerModules(),  # apply the feed plan: compressing TMs, direct feed or decoders
    ]
