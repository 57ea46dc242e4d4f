"""The field-wise `cross` core equals its plain formula (values, and gradients by float64
`gradcheck`): FieldCross is a DCN-v2 layer with a Kronecker weight, and the head adds a low-rank
projection of the per-field sums of what the cross layers added (or of the crossed fields'
pairwise dots)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from dmt_compile.errors import TowerModuleError
from dmt_compile.tower_modules import CrossCore, make_core


def _plain_field_cross(core: CrossCore, x: torch.Tensor, n: int, d: int) -> torch.Tensor:
    """DCN-v2 layers `x0 * (W h + b) + h` with `W = W_f ⊗ I_d` on the row, then `W X + b + U V s`."""
    rows = x.shape[0]
    h = x
    for cross in core.crosses:
        w = torch.kron(cross.mix.weight, torch.eye(d, dtype=x.dtype))
        h = x * (h @ w.t() + cross.bias.reshape(-1)) + h
    f = h.reshape(rows, n, d)
    head = core.head
    out = torch.einsum("kn,bnd->bkd", head.lcb.weight, f).reshape(rows, -1) + head.bias
    if core.field_scalars == "sums":  # what the layers added, summed per field
        s = (f - x.reshape(rows, n, d)).sum(dim=2)
    elif core.field_scalars == "dots":
        i, j = torch.triu_indices(n, n, offset=1)
        s = torch.stack([(f[:, a] * f[:, b]).sum(1) for a, b in zip(i.tolist(), j.tolist())], dim=1)
    else:
        return out
    u, v = head.scalars[0].weight, head.scalars[1].weight
    return out + s @ u.t() @ v.t()


@pytest.mark.parametrize("scalars", ["sums", "dots", "none"])
@pytest.mark.parametrize("layers", [1, 2])
def test_field_wise_cross_equals_the_plain_formula_with_gradients(layers, scalars):
    torch.manual_seed(0)
    n, d, k = 5, 8, 2
    core = CrossCore([d] * n, k * d, layers=None if layers == 1 else layers, embedding_dim=d,
                     field_scalars=scalars).double()
    assert core.field_wise and len(core.crosses) == layers
    assert (core.head.scalars is None) == (scalars == "none")
    x = torch.randn(6, n * d, dtype=torch.float64, requires_grad=True)
    expected = _plain_field_cross(core, x, n, d)
    got = core(x)
    assert torch.allclose(got, expected, atol=1e-12)
    g = torch.randn_like(got)
    (want,) = torch.autograd.grad(expected, x, g)
    (have,) = torch.autograd.grad(got, x, g)
    assert torch.allclose(have, want, atol=1e-12)
    assert torch.autograd.gradcheck(lambda y: core(y), (x[:2].detach().requires_grad_(),))
    params = list(core.parameters())
    assert torch.autograd.gradcheck(lambda *p: torch.func.functional_call(
        core, dict(zip([name for name, _ in core.named_parameters()], p)), (x[:2].detach(),)),
        tuple(p.detach().requires_grad_() for p in params))


def test_the_per_field_sums_are_learned_mixes_of_the_fields_dots():
    """`sum_e (h_i - x_i) = sum_j W_ij <x_i, x_j> + <x_i, b_i>`: the dot-like scalars the head gets,
    with no first-order term `sum_e x_i` mixed into them."""
    torch.manual_seed(1)
    n, d = 4, 6
    core = CrossCore([d] * n, d, embedding_dim=d).double()
    with torch.no_grad():
        core.crosses[0].bias.normal_()
    f = torch.randn(3, n, d, dtype=torch.float64)
    gram = torch.bmm(f, f.transpose(1, 2))
    cross = core.crosses[0]
    expected = (gram * cross.mix.weight).sum(2) + (f * cross.bias).sum(2)
    fm = f.transpose(0, 1).contiguous()
    h, sums = cross.field_major(fm, fm)
    assert torch.allclose(sums.t(), expected, atol=1e-12)
    assert torch.allclose(h.transpose(0, 1), cross(f, f), atol=1e-12)  # the plain layer


def test_cross_is_field_wise_with_a_head_and_full_width_otherwise():
    default = make_core("cross", [8] * 4, 16, embedding_dim=8)
    assert default.field_wise and default.field_scalars == "sums" and len(default.crosses) == 1
    assert default.head.scalars[0].weight.shape == (4, 4)  # rank min(8, n = 4)
    decoder = make_core("cross", [8] * 4, 16)  # a decoder: no embedding head, so full-width layers
    assert not decoder.field_wise and decoder.field_scalars == "none" and len(decoder.layers) == 2
    assert decoder.layers[0].weight.shape == (32, 32) and decoder(torch.randn(3, 32)).shape == (3, 16)
    full = CrossCore([8] * 4, 16, embedding_dim=8, field_wise=False)
    assert not full.field_wise and full(torch.randn(3, 32)).shape == (3, 16)
    with pytest.raises(TowerModuleError, match="sums"):
        CrossCore([8] * 4, 16, embedding_dim=8, field_scalars="squares")


def _flops(module, x) -> int:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        module(x)
    return fc.get_total_flops()


def test_field_wise_cross_costs_what_its_docstring_says():
    """13 fields of 64 into 3 embeddings: `2 n² d + 2 n k d + 2 n r + 2 r k d` per sample (r = 8)."""
    n, d, k, r = 13, 64, 3, 8
    core = make_core("cross", [d] * n, k * d, embedding_dim=d)
    assert _flops(core, torch.randn(4, n * d)) == 4 * (2 * n * n * d + 2 * n * k * d + 2 * n * r + 2 * r * k * d)
    from dmt_compile.strategy.tm_cost import tm_flops_params

    assert tm_flops_params("cross", [d] * n, k * d, d)[0] == 2 * n * n * d + 2 * n * k * d + 2 * n * r + 2 * r * k * d


@pytest.mark.parametrize("same", [True, False])
def test_fused_field_cross_gradients_with_either_output_unused(same):
    """`field_cross` (the core's fast path) by float64 gradcheck: both outputs, the layer alone,
    the sums alone (the other output's gradient is then None), `h` the same tensor as `x0` or not."""
    from dmt_compile.tower_modules.fused_cross import field_cross

    torch.manual_seed(3)
    n, rows, d = 4, 3, 5
    x0 = torch.randn(n, rows, d, dtype=torch.float64, requires_grad=True)
    h = x0 if same else torch.randn(n, rows, d, dtype=torch.float64, requires_grad=True)
    w = torch.randn(n, n, dtype=torch.float64, requires_grad=True)
    b = torch.randn(n, d, dtype=torch.float64, requires_grad=True)
    m = torch.einsum("ij,jbd->ibd", w, h) + b.unsqueeze(1)
    out, sums = field_cross(x0, h, w, b)
    assert torch.allclose(out, h + x0 * m, atol=1e-12) and torch.allclose(sums, (x0 * m).sum(-1), atol=1e-12)
    inputs = (x0, w, b) if same else (x0, h, w, b)

    def run(*args, pick):
        a, rest = args[0], args[1:]
        hh = a if same else rest[0]
        result = field_cross(a, hh, *rest[-2:])
        return result if pick is None else result[pick]

    for pick in (None, 0, 1):
        assert torch.autograd.gradcheck(lambda *a: run(*a, pick=pick), inputs)
