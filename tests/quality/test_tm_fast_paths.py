"""The Tower Modules' fast paths equal the straightforward formulas: pairwise dots (values and
gradients, float64 gradcheck), field-major field split from a row or from the lookups, the
embedding head's one-product `W X`, every core given the lookups instead of a row, and the Wukong
layer whose residual's LCB rows are folded into the LCB (the same function class)."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from dmt_compile.tower_modules import FieldSplit, WukongLayer, make_core
from dmt_compile.tower_modules.pairwise import pair_positions, pairwise_dots


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 5), n=st.integers(1, 7), d=st.integers(1, 5), offset=st.integers(0, 1))
def test_pairwise_dots_equal_gram_indexing_with_gradients(rows, n, d, offset):
    torch.manual_seed(rows * 100 + n * 10 + d)
    f = torch.randn(rows, n, d, dtype=torch.float64, requires_grad=True)
    pairs = torch.triu_indices(n, n, offset=offset)
    pos = pair_positions(pairs, n)
    ref = torch.bmm(f, f.transpose(1, 2))[:, pairs[0], pairs[1]]
    got = pairwise_dots(f, pos)
    assert torch.equal(got, ref)
    g = torch.randn_like(ref)
    (ref_grad,) = torch.autograd.grad(ref, f, g)
    (got_grad,) = torch.autograd.grad(got, f, g)
    assert torch.allclose(got_grad, ref_grad, rtol=1e-12, atol=1e-12)
    if rows and pairs.shape[1]:
        assert torch.autograd.gradcheck(lambda x: pairwise_dots(x, pos), (f,))


@pytest.mark.parametrize("widths", [[16, 16, 16], [1, 16, 48], [32, 16], [3]], ids=str)
def test_field_split_from_lookups_equals_from_row(widths):
    torch.manual_seed(0)
    fs = FieldSplit(widths)
    parts = [torch.randn(4, w) for w in widths]
    row = torch.cat(parts, dim=1)
    a, b = fs(row), fs(parts)
    assert a.shape == (4, fs.num_fields, fs.dim) and torch.equal(a, b)
    # the reference: each lookup cut into fields of dim d (projected when not a multiple), in order
    ref = torch.cat([(fs.proj[str(k)](p) if str(k) in fs.proj else p).reshape(4, -1, fs.dim)
                     for k, p in enumerate(parts)], dim=1)
    assert torch.equal(a, ref)


@pytest.mark.parametrize("name", ["linear", "dot", "cross", "wukong"])
@pytest.mark.parametrize("embedding_dim", [0, 16])
def test_cores_take_the_lookups_or_the_row_alike(name, embedding_dim):
    torch.manual_seed(0)
    widths = [16] * 5
    core = make_core(name, widths, 32, embedding_dim=embedding_dim)
    parts = [torch.randn(6, 16, requires_grad=True) for _ in widths]
    row = torch.cat([p.detach() for p in parts], dim=1).requires_grad_()
    y_parts, y_row = core(parts), core(row)
    assert torch.allclose(y_parts, y_row, atol=1e-6)
    g = torch.randn_like(y_row)
    grads = torch.autograd.grad(y_parts, parts, g)
    (row_grad,) = torch.autograd.grad(y_row, row, g)
    assert torch.allclose(torch.cat(grads, dim=1), row_grad, atol=1e-5)


def test_dot_core_equals_the_plain_formula():
    torch.manual_seed(0)
    core = make_core("dot", [8] * 6, 16, embedding_dim=8)
    x = torch.randn(5, 48)
    f = x.reshape(5, 6, 8)
    dots = torch.bmm(f, f.transpose(1, 2))[:, core.triu[0], core.triu[1]]
    head = core.head
    expected = torch.einsum("kn,bnd->bkd", head.lcb.weight, f).flatten(1) + head.bias + head.scalars(dots)
    assert torch.allclose(core(x), expected, atol=1e-5)


def test_wukong_layer_folds_the_lcb_rows_of_its_residual_into_the_lcb():
    """A layer with a full residual `R = [R_f; R_l]` equals this layer with LCB weight `W + R_l`."""
    torch.manual_seed(2)
    n, d, n_f, n_l = 7, 4, 2, 1
    layer = WukongLayer(n, d, n_f, n_l, 3, 8).double()
    assert layer.residual.weight.shape == (n_f, n)
    x = torch.randn(5, n, d, dtype=torch.float64, requires_grad=True)
    r_l = torch.randn(n_l, n, dtype=torch.float64)
    w = layer.lcb.weight - r_l  # the unfolded layer's own LCB
    r = torch.cat([layer.residual.weight, r_l])
    fm = torch.einsum("bnd,bmd,mk->bnk", x, x, layer.y)
    fmb = layer.mlp(layer.fm_norm(fm.flatten(1))).reshape(5, n_f, d)
    lcb = torch.einsum("ln,bnd->bld", w, x)
    unfolded = layer.norm(torch.cat([fmb, lcb], dim=1) + torch.einsum("mn,bnd->bmd", r, x))
    got = layer(x)
    assert torch.allclose(got, unfolded, atol=1e-12)
    g = torch.randn_like(got)
    assert torch.allclose(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(unfolded, x, g)[0], atol=1e-12)
    assert torch.autograd.gradcheck(lambda y: layer(y), (x[:2].detach().requires_grad_(),))
    kept = WukongLayer(3, d, 2, 1, 2, 8).double()  # n == n_f + n_l: the identity residual stays
    assert kept.residual is None
    f = torch.randn(2, 3, d, dtype=torch.float64)
    fm = torch.einsum("bnd,bmd,mk->bnk", f, f, kept.y)
    fmb = kept.mlp(kept.fm_norm(fm.flatten(1))).reshape(2, 2, d)
    plain = kept.norm(torch.cat([fmb, torch.einsum("ln,bnd->bld", kept.lcb.weight, f)], dim=1) + f)
    assert torch.allclose(kept(f), plain, atol=1e-12)
