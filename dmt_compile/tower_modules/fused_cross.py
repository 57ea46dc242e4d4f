"""One field-wise DCN-v2 cross layer on field-major fields, with its per-field sums, in few passes.

`m = W_f h + b`, `out = h + x0 * m`, `sums = sum_e x0 * m` on `[n, N, d]` field-major storage.
Autograd through the plain formula makes about five passes over the `[n, N, d]` tensor forward
(product, bias, multiply, add, reductions) and about eight backward (one per gradient term, and
adds where `x0` is also `h` and where the sums' gradient meets the layer's); on a CPU those
element-wise passes cost as much as the layer's matrix products. Here the forward is one product,
one in-place bias add, one `addcmul` and one `vecdot`, and the backward (first layer, `h` is
`x0`) is the gradient of the cross term (`g + g_sums`), its product with `x0`, one `addcmul`
and the field mix's two matrix products, one of them accumulating in place.
"""
from __future__ import annotations

import torch

__all__ = ["field_cross"]


class _FieldCross(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0: torch.Tensor, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        n, rows, d = x0.shape
        m = torch.mm(weight, h.reshape(n, rows * d)).view(n, rows, d)
        m.add_(bias.unsqueeze(1))
        out = torch.addcmul(h, x0, m)
        sums = torch.linalg.vecdot(x0, m)
        ctx.same = h is x0
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x0, h, weight, m)
        return out, sums

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out: torch.Tensor | None, g_sums: torch.Tensor | None):
        x0, h, weight, m = ctx.saved_tensors
        n, rows, d = x0.shape
        if g_out is None:
            g_out = torch.zeros_like(m)
        g_term = g_out if g_sums is None else g_out + g_sums.unsqueeze(-1)  # d(out, sums)/d(x0 * m)
        g_m = (g_term * x0).reshape(n, rows * d)
        g_weight = torch.mm(g_m, h.reshape(n, rows * d).t())
        g_bias = g_m.view(n, rows, d).sum(dim=1)
        if ctx.same:  # x0 is h: both gradients in one tensor, `g + g_term * m + W_fᵀ g_m`
            g_x = torch.addcmul(g_out, g_term, m, out=torch.empty_like(m))  # m's layout: contiguous
            g_x.view(n, rows * d).addmm_(weight.t(), g_m)
            return g_x, None, g_weight, g_bias
        g_h = torch.addmm(g_out.reshape(n, rows * d), weight.t(), g_m).view(n, rows, d)
        return g_term * m, g_h, g_weight, g_bias


def field_cross(x0: torch.Tensor, h: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(h + x0 * (W h + b), sum_e x0 * (W h + b))` for field-major `x0, h: [n, N, d]`, `W: [n, n]`,
    `b: [n, d]`: `([n, N, d], [n, N])`."""
    return _FieldCross.apply(x0, h, weight, bias)
