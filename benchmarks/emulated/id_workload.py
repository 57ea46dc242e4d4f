"""Multi-hot and sequence id workloads with a Zipf id distribution, for the bench and the dedup tests.

Real CTR features are multi-hot (a bag of ids per sample) or sequences, and their ids follow a
power law: a few head ids appear in most bags. `zipf_ids` draws ids with P(rank k) ∝ 1/(k+1)^s over
a table's rows (s = 0: uniform), the ranks scattered over the rows by a fixed permutation per table
so the hot ids are not all row 0. `distinct_ids` is the analytic count the deduplicated exchange is
held to: the distinct ids of one rank's batch for one table.
"""
from __future__ import annotations

import torch

__all__ = ["zipf_ids", "multi_hot", "distinct_ids"]


def zipf_ids(shape: tuple[int, ...], rows: int, s: float, generator: torch.Generator, table_seed: int = 0
             ) -> torch.Tensor:
    """int64 ids of `shape` in `[0, rows)`, P(rank k) ∝ 1/(k+1)^s (s = 0: uniform)."""
    n = 1
    for d in shape:
        n *= d
    if s <= 0:
        return torch.randint(0, rows, shape, generator=generator)
    probs = torch.arange(1, rows + 1, dtype=torch.float64).pow(-float(s))
    ranks = torch.multinomial(probs, n, replacement=True, generator=generator) if n else torch.zeros(0, dtype=torch.long)
    scatter = torch.randperm(rows, generator=torch.Generator().manual_seed(10_007 + table_seed))
    return scatter[ranks].reshape(shape)


def multi_hot(batch: int, ids_per_sample: int, rows: int, s: float, generator: torch.Generator,
              table_seed: int = 0, ragged: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """`(values, offsets)` of `batch` bags (EmbeddingBag input): `ids_per_sample` ids each, or, with
    `ragged`, 1 to 2·ids_per_sample - 1 ids (mean ids_per_sample)."""
    if ragged:
        lengths = torch.randint(1, 2 * ids_per_sample, (batch,), generator=generator)
    else:
        lengths = torch.full((batch,), ids_per_sample, dtype=torch.long)
    values = zipf_ids((int(lengths.sum()),), rows, s, generator, table_seed)
    offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)[:-1]])
    return values, offsets


def distinct_ids(ids: torch.Tensor) -> int:
    """The number of distinct ids in one rank's batch of one table."""
    return int(torch.unique(ids).numel())
