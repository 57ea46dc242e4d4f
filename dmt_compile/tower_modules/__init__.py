"""Tower Modules: the nn.Modules a tower runs before the cross-host exchange (cores, wrappers, decoders).

`TOWER_MODULES` maps a name to its core class (`None` for `identity`); `make_core` builds one for
a tower's lookup widths; `compressed_width` is ⌈width / c⌉ with a typed error when c is too large.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

from torch import nn

from dmt_compile.errors import TowerModuleError
from dmt_compile.tower_modules.cores import CrossCore, DotCore, FieldSplit, LinearCore, WukongCore, WukongLayer
from dmt_compile.tower_modules.wrappers import CompressingTowerModule, DirectFeed, IdentityTowerModule, TowerDecoder

__all__ = [
    "IdentityTowerModule", "CompressingTowerModule", "TowerDecoder", "DirectFeed",
    "TOWER_MODULES", "make_core", "compressed_width", "LinearCore", "DotCore", "CrossCore",
    "WukongCore", "WukongLayer", "FieldSplit",
]


Core = Callable[[Sequence[int], int], nn.Module]
TOWER_MODULES: dict[str, Core | None] = {
    "identity": None, "linear": LinearCore, "dot": DotCore, "cross": CrossCore, "wukong": WukongCore,
}


def make_core(name: str, in_widths: Sequence[int], out_width: int) -> nn.Module:
    """The core of compressing Tower Module `name` for a tower with lookups of `in_widths`."""
    if name not in TOWER_MODULES or TOWER_MODULES[name] is None:
        raise TowerModuleError(
            f"unknown compressing tower module {name!r}",
            "choose one of: " + ", ".join(sorted(TOWER_MODULES)),
        )
    return TOWER_MODULES[name](list(in_widths), out_width)


def compressed_width(width: int, compression: float, what: str) -> int:
    """⌈width / c⌉; a TowerModuleError when c is larger than `width` (nothing left to compress)."""
    if width < compression:
        raise TowerModuleError(
            f"compression {compression:g} is larger than {what} (width {width})",
            f"use compression <= {width}, or fewer towers so each holds more embeddings",
        )
    return max(1, math.ceil(width / compression))
