"""Quality metrics in plain torch: ROC AUC, log-loss, adjusted Rand index (no sklearn)."""
from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

import torch

__all__ = ["auc", "log_loss", "adjusted_rand_index"]


def auc(labels: torch.Tensor, scores: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); 0.5 if one class only."""
    y = labels.reshape(-1).double()
    s = scores.reshape(-1).double()
    pos = float(y.sum())
    neg = float(y.numel() - pos)
    if pos == 0 or neg == 0:
        return 0.5
    order = torch.argsort(s)
    sorted_s = s[order]
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, s.numel() + 1, dtype=torch.float64)
    # average ranks over ties
    uniq, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    if uniq.numel() < s.numel():
        ends = torch.cumsum(counts, 0).double()
        avg = ends - (counts.double() - 1) / 2
        ranks[order] = avg[inverse]
    u = float(ranks[y > 0.5].sum()) - pos * (pos + 1) / 2
    return u / (pos * neg)


def log_loss(labels: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean binary cross-entropy of logits (numerically stable)."""
    y = labels.reshape(-1).double()
    z = logits.reshape(-1).double()
    return float(torch.nn.functional.binary_cross_entropy_with_logits(z, y))


def _comb2(n: int) -> float:
    return n * (n - 1) / 2


def adjusted_rand_index(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Adjusted Rand index (Hubert & Arabie) of two labelings of the same items; 1.0 = identical."""
    if len(a) != len(b):
        raise ValueError(f"labelings have different lengths {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return 1.0
    pairs = Counter(zip(a, b))
    sum_ij = sum(_comb2(c) for c in pairs.values())
    sum_a = sum(_comb2(c) for c in Counter(a).values())
    sum_b = sum(_comb2(c) for c in Counter(b).values())
    expected = sum_a * sum_b / _comb2(n)
    top = (sum_a + sum_b) / 2
    if math.isclose(top, expected):
        return 1.0
    return (sum_ij - expected) / (top - expected)
