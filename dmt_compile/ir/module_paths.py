"""The module paths the compiler names, in one place.

`dmt.` holds every module the compiler adds to the single-process graph (Tower Modules, decoders,
direct feeds, per-field tables, per-table collections); `dist.` holds the runtime modules lowering
adds to one rank's program (the exchanges and the tower lookups). State dicts keep `dmt.` paths
as they are (they have no original name); see `model/state_names.py`.
"""
from __future__ import annotations

import torch

__all__ = ["ADDED_ROOT", "ADDED_PREFIX", "added_root", "tower_module", "tower_decoder", "tower_feed", "is_tower_module",
           "split_table", "collection_piece", "RUNTIME_ROOT", "DIST_IDS", "DIST_OUTPUTS", "DIST_OUTPUTS_WAIT",
           "tower_lookup"]

ADDED_ROOT = "dmt"  # submodule holding every module the compiler adds
ADDED_PREFIX = ADDED_ROOT + "."
RUNTIME_ROOT = "dist"  # submodule holding a rank's runtime modules
DIST_IDS = "dist.ids"  # one peer AlltoAll of every tower's ids
DIST_OUTPUTS = "dist.outputs"  # posts the AlltoAll of tower outputs back
DIST_OUTPUTS_WAIT = "dist.outputs_wait"  # waits for it


def added_root(gm: torch.nn.Module) -> torch.nn.Module:
    """The `dmt` submodule of `gm`, made empty where it is missing."""
    if not hasattr(gm, ADDED_ROOT):
        gm.add_module(ADDED_ROOT, torch.nn.Module())
    return getattr(gm, ADDED_ROOT)


def tower_module(t: int) -> str:
    return f"{ADDED_PREFIX}tower{t}_tm"


def tower_decoder(t: int) -> str:
    return f"{ADDED_PREFIX}tower{t}_decoder"


def tower_feed(t: int) -> str:
    return f"{ADDED_PREFIX}tower{t}_feed"


def is_tower_module(path: str) -> bool:
    return path.startswith(ADDED_PREFIX + "tower") and path.endswith("_tm")


def split_table(key: str, field: int) -> str:
    """The per-field table `split-tables` cuts from table `key` (dots already replaced)."""
    return f"{ADDED_PREFIX}split_{key}_f{field}"


def collection_piece(base: str, table: str) -> str:
    """The one-table collection `split-collections` cuts from collection `base`."""
    return f"{ADDED_PREFIX}{base}_{table}"


def tower_lookup(t: int) -> str:
    return f"{RUNTIME_ROOT}.tower{t}_lookup"
