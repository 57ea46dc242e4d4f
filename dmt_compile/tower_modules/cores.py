"""The cores of compressing Tower Modules: `[N, sum(in widths)] -> [N, out width]`.

Every core also takes the tower's lookups themselves (a sequence of `[N, w]`), which the
compressing wrapper passes: the cores over fields stack them field-major once instead of
concatenating a row and cutting it apart again.

* `LinearCore` (`linear`) — one projection of the concatenated embeddings.
* `DotCore` (`dot`) — DLRM-style pairwise dot products between the tower's fields, then a projection.
* `CrossCore` (`cross`, in `tower_modules.cross`) — DCN-v2 cross layers, then a projection or the embedding head.
* `WukongCore` (`wukong`) — Wukong interaction layers (FMB + LCB, layer norm, residual), then a projection.

`dot` and `wukong` see the tower as fields of one common dim (`FieldSplit`): a lookup whose width
is a multiple of it is cut into several fields, any other width is projected to it, so towers with
one feature or odd widths (1, 3*16, ...) work.

Output head. For a decoder (`embedding_dim=0`) the last step is a dense projection of everything
onto `out_width` elements: `2 * width * out_width` FLOPs per sample (for 13 fields of 64 compressed
4x: 2 * 832 * 208 = 346k, twice a flat DLRM's whole dense part). When the output feeds the
interaction as k = out_width / d embeddings of the fields' dim d (direct / hierarchical feed), the
head is embedding-wise instead (`EmbeddingHead`): Wukong's linear compress block `W X` with
`W: [k, n]` mixes the n fields into k embeddings (`2 k n d` FLOPs), and the core's scalar
interactions (dot: the pairwise dots; field-wise cross: the per-field sums of what its layers
added) reach the k embeddings through a low-rank projection (rank 8) — a Tower Module that cuts
compute rather than adding it. (`dot` projected its dots at rank 16 before: 8.6k more FLOPs per
sample on the benchmark DLRM, 0.647x flat's forward instead of 0.595x, at the same quality.)
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dmt_compile.errors import TowerModuleError
from dmt_compile.tower_modules.fan_in import FanInLinear
from dmt_compile.tower_modules.pairwise import pair_positions, pairwise_dots

__all__ = ["LinearCore", "FieldSplit", "DotCore", "WukongLayer", "WukongCore", "EmbeddingHead", "mix_fields", "as_row", "head_shape"]

SCALAR_RANK = 16  # default rank of the projection of a core's scalar interactions onto the output embeddings
DOT_RANK = 8  # the `dot` core's: its dots reach the k embeddings through rank 8, as `cross`'s sums do


def mix_fields(weight: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
    """`W X`: `[m, n]` x `[N, n, d]` -> `[N, m, d]` (a transposed view of field-major `[m, N, d]`).

    One matrix product over the field-major layout `[n, N*d]` (free when the fields are a view of
    it, as `FieldSplit` gives them): a `Linear` over the transposed fields copies them forth and
    back and, in its backward, multiplies with an inner dimension of m: several times slower.
    """
    rows, n, d = fields.shape
    field_major = fields.transpose(0, 1).reshape(n, rows * d)
    return torch.mm(weight, field_major).view(weight.shape[0], rows, d).transpose(0, 1)


class EmbeddingHead(nn.Module):
    """`[N, n, d]` fields (and `[N, s]` scalars) -> `[N, k*d]`: k embeddings of dim d.

    `W X` (`W: [k, n]`, Wukong's LCB) plus a bias, plus `U V s` (rank <= `rank`, 16 by default)
    when scalars are given. `W X` is :func:`mix_fields`.
    """

    def __init__(self, n: int, d: int, k: int, scalars: int = 0, rank: int = SCALAR_RANK):
        super().__init__()
        self.k, self.d = k, d
        self.lcb = nn.Linear(n, k, bias=False)
        self.bias = nn.Parameter(torch.zeros(k * d))
        rank = min(rank, scalars, k * d)
        self.scalars = nn.Sequential(nn.Linear(scalars, rank, bias=False), nn.Linear(rank, k * d, bias=False)) \
            if scalars else None

    def forward(self, fields: torch.Tensor, scalars: torch.Tensor | None = None) -> torch.Tensor:
        y = mix_fields(self.lcb.weight, fields).reshape(fields.shape[0], self.k * self.d) + self.bias
        return y if self.scalars is None else y + self.scalars(scalars)


def head_shape(fields: "FieldSplit", out_width: int, embedding_dim: int) -> int:
    """k when the output can be k embeddings of the fields' dim (an embedding-wise head), else 0."""
    d = fields.dim
    return out_width // d if embedding_dim == d and out_width % d == 0 else 0


class LinearCore(nn.Module):
    """`linear`: one projection of the concatenated tower embeddings, `[F_t*D] -> [F_t*D / c]`."""

    interacts = False  # no feature interaction inside the tower

    def __init__(self, in_widths: Sequence[int], out_width: int, embedding_dim: int = 0):
        super().__init__()
        fields = FieldSplit(in_widths) if embedding_dim else None
        k = head_shape(fields, out_width, embedding_dim) if fields is not None else 0
        if k:  # embedding-wise: W X over the tower's fields
            self.fields, self.head = fields, EmbeddingHead(fields.num_fields, fields.dim, k)
        else:
            self.proj = FanInLinear(sum(in_widths), out_width)

    def forward(self, x) -> torch.Tensor:
        return self.head(self.fields(x)) if hasattr(self, "head") else self.proj(as_row(x))


class FieldSplit(nn.Module):
    """`[N, sum(in_widths)] -> [N, n, d]`: the tower's lookups as `n` fields of one dim `d`.

    `d` is the most common width of at least 2 (ties: the smaller; 1 only when every width is 1); a width that is a multiple of `d` becomes
    `width/d` fields, any other width is projected to `d` by its own `Linear`.
    """

    def __init__(self, in_widths: Sequence[int]):
        super().__init__()
        widths = [int(w) for w in in_widths]
        if not widths or min(widths) < 1:
            raise TowerModuleError(f"tower widths must be positive, got {widths}", "pass the lookups' widths")
        counts: dict[int, int] = {}
        for w in widths:
            counts[w] = counts.get(w, 0) + 1
        self.dim = min(counts, key=lambda w: (w < 2, -counts[w], w))
        self.widths = widths
        self.proj = nn.ModuleDict()
        self.num_fields = 0
        for k, w in enumerate(widths):
            if w % self.dim == 0:
                self.num_fields += w // self.dim
            else:
                self.proj[str(k)] = nn.Linear(w, self.dim)
                self.num_fields += 1

    def forward(self, x) -> torch.Tensor:
        """`[N, n, d]`, a transposed view of field-major storage `[n, N, d]` (see `field_major`)."""
        return self.field_major(x).transpose(0, 1)

    def field_major(self, x) -> torch.Tensor:
        """`[n, N, d]` from `[N, sum(widths)]` or the lookups themselves (a sequence of `[N, w]`):
        each field's rows are contiguous, so the head's `W X` is one matrix product and the
        lookups are stacked once (no concatenation of the row, no per-field copies after it)."""
        parts = torch.split(x, self.widths, dim=1) if isinstance(x, torch.Tensor) else list(x)
        fields = []
        for k, p in enumerate(parts):
            p = self.proj[str(k)](p) if str(k) in self.proj else p
            m = p.shape[1] // self.dim
            fields.append(p.unsqueeze(0) if m == 1 else p.reshape(p.shape[0], m, self.dim).transpose(0, 1))
        if all(f.shape[0] == 1 for f in fields):
            return torch.stack([f[0] for f in fields], dim=0)
        return torch.cat(fields, dim=0) if len(fields) > 1 else fields[0]


def as_row(x) -> torch.Tensor:
    """`[N, sum(widths)]` from a row or from the lookups (a sequence of `[N, w]`)."""
    if isinstance(x, torch.Tensor):
        return x
    return torch.cat(list(x), dim=1) if len(x) > 1 else x[0]


class DotCore(nn.Module):
    """`dot`: pairwise dot products of the tower's fields (DLRM), concatenated with the fields, projected.

    One field has no pair: the core is then a projection of the field alone.
    """

    interacts = True  # computes feature interactions inside the tower

    def __init__(self, in_widths: Sequence[int], out_width: int, embedding_dim: int = 0):
        super().__init__()
        self.fields = FieldSplit(in_widths)
        n = self.fields.num_fields
        triu = torch.triu_indices(n, n, offset=1)
        self.register_buffer("triu", triu, persistent=False)
        self.register_buffer("positions", pair_positions(triu, n), persistent=False)
        k = head_shape(self.fields, out_width, embedding_dim)
        if k:  # embedding-wise: W X + U V dots
            self.head = EmbeddingHead(n, self.fields.dim, k, triu.shape[1], rank=DOT_RANK)
        else:
            self.proj = nn.Linear(n * self.fields.dim + triu.shape[1], out_width)

    def forward(self, x) -> torch.Tensor:
        f = self.fields(x)  # [N, n, d] (a view of field-major storage)
        dots = pairwise_dots(f, self.positions)
        if hasattr(self, "head"):
            return self.head(f, dots)
        return self.proj(torch.cat([f.flatten(1), dots], dim=1))


class WukongLayer(nn.Module):
    """One Wukong layer on `[N, n, d]`: `LN(concat(FMB(X), LCB(X)) + residual(X))` with `n_f + n_l` outputs.

    `FMB(X) = reshape(MLP(LN(flatten(X Xᵀ Y))))` with a learnable `Y: [n, k]` (optimized FM);
    `LCB(X) = W X` with `W: [n_l, n]`; the residual is linearly compressed when `n != n_f + n_l`,
    for the FMB's n_f outputs only: the LCB's rows of a compressed residual, `R_l X`, would add a
    second linear map of X to `W X` (`(W + R_l) X` is one), so they are folded into the LCB
    (the same function class for `2 n_l n d` fewer FLOPs per sample).
    Layer norms over a single element would zero it, so they fall back to the available extent.
    """

    def __init__(self, n: int, d: int, n_f: int, n_l: int, k: int, hidden: int):
        super().__init__()
        self.n_f, self.d = n_f, d
        self.y = nn.Parameter(torch.randn(n, k) / math.sqrt(n))
        self.fm_norm = nn.LayerNorm(n * k) if n * k > 1 else nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(n * k, hidden), nn.ReLU(), nn.Linear(hidden, n_f * d))
        self.lcb = nn.Linear(n, n_l, bias=False)
        self.residual = None if n == n_f + n_l else nn.Linear(n, n_f, bias=False)  # FMB rows only
        # per-embedding LN; over all embeddings when d == 1; none for a single element (LN would zero it)
        m = n_f + n_l
        self.norm = nn.LayerNorm(d) if d > 1 else nn.LayerNorm([m, 1]) if m > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Yᵀ X, W X and the residual's compression in one product over the field-major layout
        weights = [self.y.t(), self.lcb.weight] + ([] if self.residual is None else [self.residual.weight])
        mixed = mix_fields(torch.cat(weights, dim=0), x)
        parts = torch.split(mixed, [w.shape[0] for w in weights], dim=1)
        fm = torch.bmm(x, parts[0].transpose(1, 2))  # X (Xᵀ Y): [N, n, k]
        fmb = self.mlp(self.fm_norm(fm.flatten(1))).reshape(x.shape[0], self.n_f, self.d)
        lcb = parts[1]  # W X: [N, n_l, d]
        if self.residual is None:
            return self.norm(torch.cat([fmb, lcb], dim=1) + x)
        return self.norm(torch.cat([fmb + parts[2], lcb], dim=1))  # R_f X on the FMB rows


class WukongCore(nn.Module):
    """`wukong`: a stack of Wukong layers over the tower's fields, flattened and projected.

    Fed as k embeddings (`embedding_dim`), one lean layer (`Y` of rank 4, MLP hidden 32) maps the
    n fields straight to k embeddings, then `W X`: the tower costs about a third of a DLRM dot
    interaction over its fields, where two full layers cost several times more.
    """

    interacts = True  # computes feature interactions inside the tower

    def __init__(self, in_widths: Sequence[int], out_width: int, layers: int = 2, hidden: int = 64,
                 embedding_dim: int = 0):
        super().__init__()
        self.fields = FieldSplit(in_widths)
        n, d = self.fields.num_fields, self.fields.dim
        k_out = head_shape(self.fields, out_width, embedding_dim)
        if k_out:  # one lean layer n -> k_out embeddings
            n_l = max(1, k_out // 2)
            sizes, rank, hidden = [(max(1, k_out - n_l), n_l)], 4, 32
        else:
            sizes, rank = [(max(1, math.ceil(n / 2)),) * 2] * layers, 8
        blocks = []
        for n_f, n_l in sizes:
            blocks.append(WukongLayer(n, d, n_f, n_l, max(1, min(n, rank)), hidden))
            n = n_f + n_l
        self.blocks = nn.Sequential(*blocks)
        if k_out:  # embedding-wise: W X over the last layer's embeddings
            self.head = EmbeddingHead(n, d, k_out)
        else:
            self.proj = nn.Linear(n * d, out_width)

    def forward(self, x) -> torch.Tensor:
        h = self.blocks(self.fields(x))
        return self.head(h) if hasattr(self, "head") else self.proj(h.flatten(1))
