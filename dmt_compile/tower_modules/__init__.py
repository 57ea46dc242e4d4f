"""Tower Modules: the nn.Modules a tower runs before the cross-host exchange (cores, wrappers, decoders).

`TOWER_MODULES` maps a name to its core class (`None` for `identity`); `make_core` builds one for
a tower's lookup widths; `compressed_width` is ⌈width / c⌉ (at least one element),
`compressed_count` the number of whole embeddings whose ratio is closest to c, `clamp_note` the
plan's note for a tower narrower than c (it compresses to one element or embedding);
`interacts(name)` says whether the core computes feature interactions inside the tower (what
hierarchical feed relies on: the global interaction then only sees the compressed outputs).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from torch import nn

from dmt_compile.errors import TowerModuleError
from dmt_compile.tower_modules.cores import DotCore, EmbeddingHead, FieldSplit, LinearCore, WukongCore, WukongLayer
from dmt_compile.tower_modules.cross import CrossCore, FieldCross
from dmt_compile.tower_modules.wrappers import CompressingTowerModule, DirectFeed, IdentityTowerModule, TowerDecoder

__all__ = [
    "IdentityTowerModule", "CompressingTowerModule", "TowerDecoder", "DirectFeed",
    "TOWER_MODULES", "make_core", "compressed_width", "LinearCore", "DotCore", "CrossCore",
    "WukongCore", "WukongLayer", "FieldCross", "FieldSplit", "interacts", "compressed_count", "clamp_note", "EmbeddingHead",
]


Core = Callable[[Sequence[int], int], nn.Module]
TOWER_MODULES: dict[str, Core | None] = {
    "identity": None, "linear": LinearCore, "dot": DotCore, "cross": CrossCore, "wukong": WukongCore,
}


def make_core(name: str, in_widths: Sequence[int], out_width: int, embedding_dim: int = 0) -> nn.Module:
    """The core of compressing Tower Module `name` for a tower with lookups of `in_widths`.

    `embedding_dim` > 0: the output feeds the interaction as embeddings of that dim, so the core
    ends in an embedding-wise head (see `cores`) when its fields have that dim.
    """
    if name not in TOWER_MODULES or TOWER_MODULES[name] is None:
        raise TowerModuleError(
            f"unknown compressing tower module {name!r}",
            "choose one of: " + ", ".join(sorted(TOWER_MODULES)),
        )
    return TOWER_MODULES[name](list(in_widths), out_width, embedding_dim=embedding_dim)


def interacts(name: str) -> bool:
    """True when Tower Module `name`'s core computes feature interactions inside the tower (dot, cross, wukong)."""
    core = TOWER_MODULES.get(name)
    return bool(getattr(core, "interacts", False))


def compressed_count(count: int, compression: float) -> int:
    """Whole embeddings out of `count`: the k in {⌊count/c⌋, ⌈count/c⌉} whose ratio count/k is closest
    to c (ties: the larger k); one when c is at least `count` (see :func:`clamp_note`)."""
    lo, hi = max(1, math.floor(count / compression)), max(1, math.ceil(count / compression))
    return lo if abs(count / lo - compression) < abs(count / hi - compression) else hi


def compressed_width(width: int, compression: float) -> int:
    """⌈width / c⌉, at least one element (a tower narrower than c compresses to one element)."""
    return max(1, math.ceil(width / compression))


def clamp_note(size: int, compression: float, tower: int, what: str) -> str:
    """The plan note of a tower whose `size` (embeddings or width) is smaller than c, else ''."""
    if size >= compression:
        return ""
    return (f"tower {tower} compresses by {size:g}, not {compression:g}: its {what} is {size} "
            "(it leaves as one; fewer towers or a smaller compression keep the ratio)")
