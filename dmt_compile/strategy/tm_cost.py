"""Tower-Module and decoder FLOPs and parameters per sample, from a tower's shape (no module is built).

Building the cores of every candidate would cost seconds on a 1,000-feature model (a dot core over
125 fields builds a pair-index buffer of ~7,700 pairs per tower and candidate), so the search
prices them from their shape: exact for `linear` (a dense projection) and the decoder, an
estimate for the interacting cores (`dot`: pairwise dots plus the projection or embedding head;
`cross`: fed as embeddings one field-wise cross layer plus the head and its rank-8 path of
the per-field sums, else two full-width cross layers, low-rank above 256 elements; `wukong`: two factorization-machine
layers). Only the compute terms of a prediction use these numbers, and the Tower Module runs on
the tower's host only, so an estimate within a factor of two moves a step by a few percent at most.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["tm_flops_params", "decoder_flops_params"]

HEAD_RANK = 16  # EmbeddingHead's rank of the pairwise-dot projection
CROSS_FULL = 256  # CrossCore: full-rank layers up to this width
CROSS_RANK = 64
SUMS_RANK = 8  # CrossCore's field-wise head: rank of the per-field sums' projection
WUKONG_HIDDEN = 64
LAYERS = 2


def _fields(in_widths: Sequence[int]) -> tuple[int, int]:
    """(fields n, field dim d) as FieldSplit cuts the tower: d the most common width of at least 2."""
    counts: dict[int, int] = {}
    for w in in_widths:
        counts[w] = counts.get(w, 0) + 1
    d = min(counts, key=lambda w: (w < 2, -counts[w], w))
    return sum(w // d if w % d == 0 else 1 for w in in_widths), d


def tm_flops_params(tower_module: str, in_widths: Sequence[int], out_width: int,
                    embedding_dim: int = 0) -> tuple[float, float]:
    """(forward FLOPs per sample, parameters) of Tower Module `tower_module` on one tower (see module docstring)."""
    width = float(sum(in_widths))
    n, d = _fields(in_widths)
    pairs = n * (n - 1) / 2
    head = embedding_dim > 0 and embedding_dim == d
    k = out_width / d if head else 0.0
    if tower_module == "linear":
        params = n * k if head else width * out_width + out_width
        return 2.0 * (n * k * d if head else width * out_width), params
    if tower_module == "dot":
        if head:
            params = n * k + k * d + pairs * HEAD_RANK + HEAD_RANK * k * d
            flops = 2 * n * n * d + 2 * n * k * d + 2 * pairs * HEAD_RANK + 2 * HEAD_RANK * k * d
        else:
            params = (n * d + pairs) * out_width
            flops = 2 * n * n * d + 2 * params
        return float(flops), float(params)
    if tower_module == "cross" and head:  # one FieldCross layer, W X, U V of the n per-field sums
        r = min(SUMS_RANK, n, k * d)
        params = n * n + n * d + n * k + k * d + n * r + r * k * d
        flops = 2 * n * n * d + 2 * n * k * d + 2 * n * r + 2 * r * k * d
        return float(flops), float(params)
    if tower_module == "cross":
        w = n * d
        layer = w * w + w if w <= CROSS_FULL else 2 * w * CROSS_RANK + w
        params = LAYERS * layer + w * out_width
        return 2.0 * params + LAYERS * 2 * w, float(params)
    if tower_module == "wukong":
        kk = max(1.0, k or out_width / max(d, 1))
        layer = n * kk + n * kk * WUKONG_HIDDEN + WUKONG_HIDDEN * n * d + n * n
        params = LAYERS * layer + (0 if head else n * d * out_width)
        return 2.0 * params + LAYERS * 2 * n * n * d, float(params)
    raise ValueError(f"no cost estimate for tower module {tower_module!r}")


def decoder_flops_params(core_width: int, in_widths: Sequence[int]) -> tuple[float, float]:
    """(forward FLOPs per sample, parameters) of one tower's decoder `Linear(core_width -> sum widths)`."""
    out = float(sum(in_widths))
    return 2.0 * core_width * out, core_width * out + out
