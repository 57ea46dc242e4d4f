"""`cross`: DCN-v2 cross layers `x_{l+1} = x0 * (W_l x_l + b_l) + x_l` inside a Tower Module.

Two shapes, chosen by the feed:

* fed as k embeddings of the fields' dim (`embedding_dim`, direct / hierarchical feed) and
  `field_wise=True` (the default): `FieldCross` layers mix whole fields (`W = W_f ⊗ I_d`,
  `2 n² d` FLOPs per layer and sample), then the embedding head `W X` plus a rank-8 projection
  of the per-field sums of what the layers added, `s_i = sum_e (h_i - x0_i)` (after one layer
  `sum_j W_ij <x0_i, x0_j> + <x0_i, b_i>`: a learned mix of field i's dots with every field).
  These are the dot-product-like scalars a field-wise cross otherwise never forms: the head
  mixes fields per element and never sums over elements. On the planted-interaction screen,
  without them (`field_scalars="none"`) the core lost 0.12 AUC against flat; summing `h` itself
  instead of `h - x0` lost 0.09 (the first-order `sum_e x0_i` is mixed into every scalar and
  cannot be told apart from the dots); with them it gained 0.016.
  `field_scalars="dots"` projects the crossed fields' pairwise dots instead (rank 16, as the
  `dot` core): better still on that screen, but another `2 n² d` FLOPs per sample.
* otherwise (a decoder, or `field_wise=False`): full-width cross layers over the concatenated
  embeddings (`W_l` a full `[w, w]` matrix up to width 256, low rank `U V` of rank 64 above, as
  in DCN-v2), then a dense projection, or the plain embedding head.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dmt_compile.errors import TowerModuleError
from dmt_compile.tower_modules.cores import EmbeddingHead, FieldSplit, as_row, head_shape, mix_fields
from dmt_compile.tower_modules.fused_cross import field_cross
from dmt_compile.tower_modules.pairwise import pair_positions, pairwise_dots

__all__ = ["FieldCross", "CrossCore", "FIELD_SCALARS", "SUMS_RANK"]

FIELD_SCALARS = ("sums", "dots", "none")  # what the field-wise head adds besides W X
SUMS_RANK = 8  # rank of the projection of the per-field sums onto the k output embeddings


class FieldCross(nn.Module):
    """A DCN-v2 cross layer whose weight mixes fields: `x_{l+1} = x0 * (W_f x_l + b) + x_l` on `[N, n, d]`.

    `W = W_f ⊗ I_d` with `W_f: [n, n]`: every element of field i is multiplied by the same element
    of a learned mix of all fields (`x0_i * sum_j W_ij x_j`: each pair of fields interacts, element
    by element), for `2 n² d` FLOPs per sample instead of DCN-v2's `2 (nd)²` (or `4 nd r` at rank r).
    `W_f x` is one `[n, n] x [n, N*d]` product over the field-major layout (:func:`mix_fields`).
    """

    def __init__(self, n: int, d: int):
        super().__init__()
        self.mix = nn.Linear(n, n, bias=False)  # nn.Linear's initialisation, as DCN-v2's layers
        self.bias = nn.Parameter(torch.zeros(n, d))

    def forward(self, x0: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return x0 * (mix_fields(self.mix.weight, h) + self.bias) + h

    def field_major(self, x0: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer on field-major `[n, N, d]` fields, and the per-field sums of its cross term
        `sum_e x0 * (W_f h + b)`, `[n, N]` (:func:`fused_cross.field_cross`)."""
        return field_cross(x0, h, self.mix.weight, self.bias)


class CrossCore(nn.Module):
    """`cross`: DCN-v2 cross layers, then a projection or the embedding head (see the module docstring).

    `field_wise` (default True) applies only with an embedding head; `layers` defaults to 1
    field-wise, 2 full-width; `field_scalars` is one of `FIELD_SCALARS`.
    """

    interacts = True  # computes feature interactions inside the tower

    def __init__(self, in_widths: Sequence[int], out_width: int, layers: int | None = None, max_full: int = 256,
                 embedding_dim: int = 0, field_wise: bool = True, field_scalars: str = "sums"):
        super().__init__()
        if field_scalars not in FIELD_SCALARS:
            raise TowerModuleError(f"unknown field_scalars {field_scalars!r}",
                                   "choose one of: " + ", ".join(FIELD_SCALARS))
        w = sum(in_widths)
        fields = FieldSplit(in_widths) if embedding_dim else None
        k = head_shape(fields, out_width, embedding_dim) if fields is not None else 0
        self.field_wise = bool(field_wise) and bool(k)
        self.field_scalars = field_scalars if self.field_wise else "none"
        if self.field_wise:
            n, d = fields.num_fields, fields.dim
            self.crosses = nn.ModuleList(FieldCross(n, d) for _ in range(1 if layers is None else layers))
            self.fields = fields
            if field_scalars == "dots":
                triu = torch.triu_indices(n, n, offset=1)
                self.register_buffer("positions", pair_positions(triu, n), persistent=False)
                self.head = EmbeddingHead(n, d, k, triu.shape[1])
            else:
                self.head = EmbeddingHead(n, d, k, n if field_scalars == "sums" else 0, rank=SUMS_RANK)
            return
        rank = 64 if w > max_full else None
        self.layers = nn.ModuleList(
            nn.Linear(w, w) if rank is None else nn.Sequential(nn.Linear(w, rank, bias=False), nn.Linear(rank, w))
            for _ in range(2 if layers is None else layers)
        )
        if k:  # embedding-wise head over the crossed fields (the cross layers keep the field layout)
            self.fields, self.head = fields, EmbeddingHead(fields.num_fields, fields.dim, k)
        else:
            self.proj = nn.Linear(w, out_width)

    def forward(self, x) -> torch.Tensor:
        if self.field_wise:
            x0 = h = self.fields.field_major(x).contiguous()  # [n, N, d]
            sums = None  # sum_e (h - x0): what the layers added, summed per field
            for cross in self.crosses:
                h, added = cross.field_major(x0, h)
                sums = added if sums is None else sums + added
            fields = h.transpose(0, 1)  # [N, n, d], a view
            return self.head(fields, self.scalars(fields, sums))
        x = as_row(x)
        x0, h = x, x
        for layer in self.layers:
            h = x0 * layer(h) + h
        return self.head(self.fields(h)) if hasattr(self, "head") else self.proj(h)

    def scalars(self, h: torch.Tensor, sums: torch.Tensor) -> torch.Tensor | None:
        """The head's scalars from the crossed fields `h: [N, n, d]` and the field-major sums of
        what the layers added (`[n, N]`): `[N, n]` sums, `[N, P]` pairwise dots of `h`, or None."""
        if self.field_scalars == "sums":
            return sums.t()
        if self.field_scalars == "dots":
            return pairwise_dots(h, self.positions)
        return None
