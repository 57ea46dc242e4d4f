"""`CTRData`: a tabular CTR data set (dense floats, categorical ids, binary labels) and its batches."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

__all__ = ["CTRData"]


@dataclass(frozen=True)
class CTRData:
    """`dense [N, n_dense]`, `sparse [N, F]` ids, `labels [N]` in {0, 1}; `groups`: planted truth (or ())."""

    name: str
    dense: torch.Tensor
    sparse: torch.Tensor
    labels: torch.Tensor
    feature_names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    groups: tuple[tuple[str, ...], ...] = field(default=())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> "CTRData":
        return CTRData(self.name, self.dense[index], self.sparse[index], self.labels[index],
                       self.feature_names, self.cardinalities, self.groups)

    def split(self, test_fraction: float = 0.2, seed: int = 0) -> tuple["CTRData", "CTRData"]:
        """Deterministic seeded (train, test) split."""
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        n_test = int(round(len(self) * test_fraction))
        return self.subset(perm[n_test:]), self.subset(perm[:n_test])

    def inputs(self, index: torch.Tensor | slice | None = None) -> tuple:
        """Model inputs `(dense, {feature: ids})` for the rows `index` (all rows by default)."""
        idx = slice(None) if index is None else index
        sparse = self.sparse[idx]
        return self.dense[idx], {n: sparse[:, i] for i, n in enumerate(self.feature_names)}

    def batches(self, batch_size: int, seed: int | None = None) -> Iterator[tuple[tuple, torch.Tensor]]:
        """`((dense, sparse), labels)` mini-batches; shuffled with `seed` unless it is None."""
        n = len(self)
        order = (torch.arange(n) if seed is None
                 else torch.randperm(n, generator=torch.Generator().manual_seed(seed)))
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield self.inputs(idx), self.labels[idx]
