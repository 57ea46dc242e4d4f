"""Row-wise sharding of one table over the ranks of a host.

A row-wise lookup is seen as *bags*: an EmbeddingBag bag is a bag, and every id of a plain
`nn.Embedding` lookup is a bag of one. Member j owns rows `[starts[j], starts[j+1])`. Each sample
owner splits every bag's ids by shard and sends them (jagged: per-bag lengths, local row ids,
per-id weights); the shard returns per-bag partial sums; the sample owner adds the partials of
all shards (and divides by the bag size for `mean`). For `sum`/`mean` pooling this is exact up to
float summation order, like TorchRec's row-wise reduce-scatter.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime.wire import Stream

__all__ = ["RowWiseLookup", "RowShard", "to_bags", "split_by_shard", "row_starts", "check_supported"]


@dataclass(frozen=True)
class RowWiseLookup:
    """How one lookup of a row-wise table reads its ids as bags and rebuilds its output."""

    key: str  # table key (module name in TowerLookup.shards)
    dim: int
    mode: str  # "sum" | "mean"
    kind: str  # "jagged" | "bag2d" | "ids"
    positions: tuple  # positions of (ids[, offsets]) in the tower's id tuple
    weights_pos: int | None
    last_offset: bool
    bags_per_sample: int  # 1 for EmbeddingBag; prod(id trailing shape) for nn.Embedding
    out_shape: tuple  # per-sample output shape of the original lookup
    starts: tuple  # row blocks: member j owns [starts[j], starts[j+1])

    def bags(self, ids) -> Stream:
        return to_bags(self.kind, ids, self.positions, self.weights_pos, self.last_offset, self.kind)

    def finish(self, summed: torch.Tensor, bags: Stream, n: int) -> torch.Tensor:
        """Sum of the shards' partials -> the lookup's output (mean divides by the bag size)."""
        out = summed.reshape(n * self.bags_per_sample, self.dim)
        if self.mode == "mean":
            out = out / bags.lengths.clamp(min=1).to(out.dtype).unsqueeze(1)
        return out.reshape(n, *self.out_shape)


def row_starts(rows: int, members: int) -> list[int]:
    """Contiguous row blocks, as even as possible: member j owns [starts[j], starts[j+1])."""
    base, extra = divmod(rows, members)
    starts = [0]
    for j in range(members):
        starts.append(starts[-1] + base + (1 if j < extra else 0))
    return starts


def to_bags(kind: str, ids, positions: tuple, weights_pos, last_offset: bool, mode: str) -> Stream:
    """The lookup's ids as bags: (ids int64, per-bag lengths, per-id weights or None)."""
    x = ids[positions[0]]
    if kind == "jagged":
        offsets = ids[positions[1]].to(torch.int64)
        bounds = offsets if last_offset else torch.cat([offsets, offsets.new_tensor([x.numel()])])
        lengths = bounds[1:] - bounds[:-1]
        w = ids[weights_pos] if weights_pos is not None else None
        return Stream(x.to(torch.int64), lengths, None if w is None else w.detach())  # weights keep their dtype
    if mode == "bag2d":  # EmbeddingBag with a 2-D input: each row is one bag
        return Stream(x.reshape(-1).to(torch.int64),
                      torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device), None)
    flat = x.reshape(-1).to(torch.int64)  # nn.Embedding: every id is a bag of one
    return Stream(flat, torch.ones(flat.numel(), dtype=torch.int64, device=flat.device), None)


def split_by_shard(bags: Stream, starts: list[int]) -> list[Stream]:
    """One stream per shard: each bag keeps only the ids of that shard (local row numbers)."""
    device = bags.values.device
    shard = torch.bucketize(bags.values, torch.tensor(starts[1:-1], dtype=torch.int64, device=device), right=True)
    bag_of = torch.repeat_interleave(torch.arange(bags.lengths.numel(), device=device), bags.lengths)
    out = []
    for j in range(len(starts) - 1):
        keep = shard == j
        lengths = torch.bincount(bag_of[keep], minlength=bags.lengths.numel())
        weights = bags.weights[keep] if bags.weights is not None else None
        out.append(Stream(bags.values[keep] - starts[j], lengths, weights))
    return out


class RowShard(nn.Module):
    """Rows [start, stop) of a table; returns per-bag partial sums for the ids it receives."""

    def __init__(self, full: torch.Tensor, start: int, stop: int, table: str):
        super().__init__()
        self.weight = nn.Parameter(full.detach()[start:stop].clone())
        self.start, self.stop, self.table = start, stop, table

    def forward(self, bags: Stream) -> torch.Tensor:
        offsets = torch.cat([bags.lengths.new_zeros(1), torch.cumsum(bags.lengths, 0)[:-1]])
        return F.embedding_bag(bags.values, self.weight, offsets, mode="sum", per_sample_weights=bags.weights)

    def extra_repr(self) -> str:
        return f"table={self.table!r}, rows=[{self.start}, {self.stop})"


def check_supported(module: nn.Module | None, mode: str, name: str, kwargs: dict) -> None:
    """Raise a typed error for lookups row-wise sharding cannot reproduce exactly."""
    padding = getattr(module, "padding_idx", None) if module is not None else kwargs.get("padding_idx")
    max_norm = getattr(module, "max_norm", None) if module is not None else kwargs.get("max_norm")
    if padding is not None or max_norm is not None:
        raise RuntimeSetupError(f"table {name} uses padding_idx/max_norm, which row-wise sharding does not support",
                                "shard it table-wise (row_wise='never')")
    if mode not in ("sum", "mean"):
        raise RuntimeSetupError(f"table {name} pools with {mode!r}; row-wise sharding supports sum and mean",
                                "shard it table-wise (row_wise='never')")
