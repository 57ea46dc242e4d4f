"""`FeedPlan`: how each tower's Tower Module output reaches the rest of the model.

Made by the `plan-feed` analysis before any graph change, applied by `insert-tower-modules`.

* `identity` — the tower's lookups travel unchanged (no Tower Module weights).
* `direct` — the interaction is shape-polymorphic in the number of embeddings: the lookups that
  only enter one `torch.cat`/`torch.stack` site are compressed into `pieces` embeddings of shape
  `piece_shape` and spliced into that site; other lookups of the tower pass through.
* `hierarchical` — direct feed into a model that is not polymorphic: the layers whose width
  depends on the number of embeddings (`FeedPlan.rebuilt`: e.g. DLRM's top MLP after the dot
  interaction and its triangle indices, DCN's cross layers and deep input) are rebuilt for the
  new width. The global interaction runs over the compressed tower outputs (paper §4,
  "hierarchical feature interaction"); this changes the model.
* `decoder` — every lookup is compressed; a decoder after the exchange restores each original
  tensor (the rest of the model is unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FeedPlan", "TowerFeed", "SiteUse", "RebuiltLayer", "FEEDS", "REBUILD_INITS", "expand_runs"]

FEEDS = ("auto", "direct", "hierarchical", "decoder")
#: `copy`: entries whose input (and output) still exist keep their trained values, the others get
#: PyTorch's default init; `default`: the whole rebuilt layer gets PyTorch's default init.
REBUILD_INITS = ("copy", "default")

Runs = tuple[tuple[int, int, int], ...]  # (new index, old index, length) of index runs that still exist


def expand_runs(runs: Runs) -> tuple[list[int], list[int]]:
    """(new indices, old indices) of `runs`."""
    new, old = [], []
    for a, b, n in runs:
        new.extend(range(a, a + n))
        old.extend(range(b, b + n))
    return new, old


@dataclass(frozen=True)
class RebuiltLayer:
    """One layer (or index buffer) rebuilt for the width hierarchical feed gives it.

    `target` is the module or buffer path (unchanged, so state_dict keys stay recognisable).
    `kind`: `linear`, `layer_norm`, `batch_norm` (parameters) or `triu_indices` / `tril_indices`
    (a buffer of the interaction's pair indices, recomputed for the new number of vectors).
    Shapes are the parameter's (`[out, in]` for a Linear, `[n]` for a norm, the buffer's shape).
    `in_runs` / `out_runs` say which input columns / output rows still exist, as (new, old,
    length) runs; with `init="copy"` their trained values are copied, everything else gets
    PyTorch's default init.
    """

    target: str
    kind: str
    old_shape: tuple[int, ...]
    new_shape: tuple[int, ...]
    init: str  # copy | default | recomputed
    why: str
    in_runs: Runs = ()
    out_runs: Runs = ()
    offset: int = 0  # triu/tril: the diagonal offset
    vectors: tuple[int, ...] = ()  # triu/tril: (old, new) number of vectors of the interaction
    row: int = -1  # triu/tril: -1 for one [2, M] buffer, 0 / 1 for a buffer holding one row of the pairs

    @property
    def copied(self) -> tuple[int, int]:
        """(input columns, output rows) whose trained values were kept."""
        return sum(n for _, _, n in self.in_runs), sum(n for _, _, n in self.out_runs)

    def describe(self) -> str:
        old = "x".join(map(str, self.old_shape))
        new = "x".join(map(str, self.new_shape))
        head = f"{self.target} ({self.kind} {old} -> {new}; {self.why})"
        if self.init == "recomputed":
            n = self.vectors[-1]
            part = "" if self.row < 0 else f"[{self.row}]"
            return f"{head}: recomputed as {self.kind}({n}, {n}, offset={self.offset}){part}"
        if self.init == "default":
            return f"{head}: PyTorch default init"
        cols, rows = self.copied
        width_in = self.new_shape[-1]
        if self.kind != "linear":
            parts = [f"{cols} of {width_in} entries"]
        else:
            same_in = width_in == self.old_shape[-1]
            parts = [f"all {width_in} input columns" if same_in else f"{cols} of {width_in} input columns"]
            if self.new_shape[0] != self.old_shape[0]:
                parts.append(f"{rows} of {self.new_shape[0]} output rows")
        return (f"{head}: kept the trained values of {' and '.join(parts)} that still exist, "
                "PyTorch default init for the rest")


@dataclass(frozen=True)
class SiteUse:
    """A compressed lookup's element in a cat/stack list: which site and which list element."""

    site: str  # name of the cat/stack node
    element: str | None  # name of the list element (a view of the lookup), None when it is the lookup itself
    lookup: int  # position of the lookup in the tower (tower order)


@dataclass(frozen=True)
class TowerFeed:
    tower: int
    feed: str  # identity | direct | hierarchical | decoder
    compress: tuple[bool, ...]  # per lookup of the tower: fed to the core (True) or passed through
    in_widths: tuple[int, ...] = ()  # widths of the compressed lookups, in order
    core_width: int = 0  # width of the core's output (per sample)
    width_out: int = 0  # elements per sample leaving the tower (core + pass-through)
    pieces: int = 0  # direct/hierarchical: embeddings cut from the core output
    piece_shape: tuple[int, ...] = ()  # direct/hierarchical: per-sample shape of each piece
    uses: tuple[SiteUse, ...] = ()  # direct/hierarchical: where the compressed lookups enter the interaction
    embedding_dim: int = 0  # direct/hierarchical: dim of the whole embeddings the core emits (0: a flat slice)
    shapes: tuple[tuple[int, ...], ...] = ()  # decoder: per-sample shape of each lookup
    keyed: tuple = ()  # decoder: (keys, lengths) of lookups returning a torchrec KeyedTensor, else None
    note: str = ""  # why this tower compresses by less than c (it is narrower than c), else ''


@dataclass(frozen=True)
class FeedPlan:
    tower_module: str
    compression: float
    towers: tuple[TowerFeed, ...]
    notes: tuple[str, ...] = ()
    rebuilt: tuple[RebuiltLayer, ...] = ()  # hierarchical: layers rebuilt for the new width, in graph order

    @property
    def identity(self) -> bool:
        return self.tower_module == "identity"
