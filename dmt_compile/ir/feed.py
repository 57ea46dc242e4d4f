"""`FeedPlan`: how each tower's Tower Module output reaches the rest of the model.

Made by the `plan-feed` analysis before any graph change, applied by `insert-tower-modules`.

* `identity` — the tower's lookups travel unchanged (no Tower Module weights).
* `direct` — the interaction is shape-polymorphic in the number of embeddings: the lookups that
  only enter one `torch.cat`/`torch.stack` site are compressed into `pieces` embeddings of shape
  `piece_shape` and spliced into that site; other lookups of the tower pass through.
* `decoder` — every lookup is compressed; a decoder after the exchange restores each original
  tensor (the rest of the model is unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FeedPlan", "TowerFeed", "SiteUse", "FEEDS"]

FEEDS = ("auto", "direct", "decoder")


@dataclass(frozen=True)
class SiteUse:
    """A compressed lookup's element in a cat/stack list: which site and which list element."""

    site: str  # name of the cat/stack node
    element: str | None  # name of the list element (a view of the lookup), None when it is the lookup itself
    lookup: int  # position of the lookup in the tower (tower order)


@dataclass(frozen=True)
class TowerFeed:
    tower: int
    feed: str  # identity | direct | decoder
    compress: tuple[bool, ...]  # per lookup of the tower: fed to the core (True) or passed through
    in_widths: tuple[int, ...] = ()  # widths of the compressed lookups, in order
    core_width: int = 0  # width of the core's output (per sample)
    width_out: int = 0  # elements per sample leaving the tower (core + pass-through)
    pieces: int = 0  # direct: embeddings cut from the core output
    piece_shape: tuple[int, ...] = ()  # direct: per-sample shape of each piece
    uses: tuple[SiteUse, ...] = ()  # direct: where the compressed lookups enter the interaction
    shapes: tuple[tuple[int, ...], ...] = ()  # decoder: per-sample shape of each lookup
    keyed: tuple = ()  # decoder: (keys, lengths) of lookups returning a torchrec KeyedTensor, else None


@dataclass(frozen=True)
class FeedPlan:
    tower_module: str
    compression: float
    towers: tuple[TowerFeed, ...]
    notes: tuple[str, ...] = ()

    @property
    def identity(self) -> bool:
        return self.tower_module == "identity"
