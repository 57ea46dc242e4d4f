"""Pairwise dot products of a sample's fields, `[N, n, d] -> [N, P]`, with a one-product backward.

`dots[:, p] = <f[:, i_p], f[:, j_p]>` for the pairs `(i_p, j_p)` of `pairs` (DLRM's upper triangle).
Autograd through `bmm(f, fᵀ)[:, i, j]` runs two batched products with transposed operands, adds
their results in different layouts and scatters through advanced indexing: on a CPU that backward
costs ~5x the forward. Here the gradient is `(S + Sᵀ) f` with `S` the pair gradients scattered into
an `n x n` matrix: one batched product in the forward's layout.
"""
from __future__ import annotations

import torch

__all__ = ["pairwise_dots", "pair_positions"]


def pair_positions(pairs: torch.Tensor, n: int) -> torch.Tensor:
    """`[2, P]` positions `(i*n + j, j*n + i)` of each pair in a flattened `n x n` Gram matrix."""
    return torch.stack([pairs[0] * n + pairs[1], pairs[1] * n + pairs[0]])


class _PairwiseDots(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fields: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        n = fields.shape[1]
        gram = torch.bmm(fields, fields.transpose(1, 2)).view(fields.shape[0], n * n)
        ctx.save_for_backward(fields, positions)
        return gram.index_select(1, positions[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        fields, positions = ctx.saved_tensors
        rows, n = fields.shape[0], fields.shape[1]
        sym = grad.new_zeros(rows, n * n)
        sym.index_add_(1, positions[0], grad)
        sym.index_add_(1, positions[1], grad)  # a diagonal pair lands twice: d<f,f>/df = 2f
        return torch.bmm(sym.view(rows, n, n), fields), None


def pairwise_dots(fields: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """`[N, P]` dots of the field pairs whose `positions` come from :func:`pair_positions`."""
    return _PairwiseDots.apply(fields, positions)
