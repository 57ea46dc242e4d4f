"""The eager reference is the model's plain run, fused inference paths included (capture/preconditions.py).

`nn.MultiheadAttention` and `nn.TransformerEncoderLayer` run a fused kernel
(`torch._native_multi_head_attention`, `torch._transformer_encoder_layer_fwd`) in eval mode when no
gradient is recorded, unless a tensor argument "has a torch function" -- which every tensor has while a
`TorchFunctionMode` is active. Capture's reference run checks each lookup's ids through such a mode
(`IdWatch`), so the reference took the slow path, while the graph (which calls these torch.nn modules as
they are) takes the fused one under `no_grad`: the two differ in the last bits, 1e-5 and more at
outputs of magnitude ~1e3.
Before: capture's symbolic graph "differed from the eager model", capture fell back to torch.export,
whose `scaled_dot_product_attention` graph was within capture's 1e-5 but not bit-exact, and the
rewrite's output differed from the eager model's (a library's BERT4Rec: 1.5e-5).
Expected: the reference is the output of a run without the mode (the watched run still checks the ids),
so the symbolic graph reproduces it, and the rewrite is exact in eval (fused path) and with gradients
(slow path).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile

V, D, L = 12, 16, 5


class PreLNSelfAttention(nn.Module):
    """Two id sequences embedded, summed, one pre-LN self-attention block over the positions."""

    def __init__(self, layer: str):
        super().__init__()
        self.items, self.cats = nn.Embedding(V, D), nn.Embedding(V, D)
        self.norm = nn.LayerNorm(D)
        self.layer = layer
        if layer == "mha":
            self.attn = nn.MultiheadAttention(D, 2, dropout=0.1, batch_first=True)
        else:
            self.attn = nn.TransformerEncoderLayer(D, 2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.out = nn.Linear(D, 1)
        with torch.no_grad():  # outputs of magnitude ~1e3: the two attention paths differ by more than 1e-5
            self.out.weight.mul_(1000.0)

    def forward(self, items, cats):
        x = self.norm(self.items(items) + self.cats(cats))
        if self.layer == "mha":
            x, _ = self.attn(x, x, x, need_weights=False)
        else:
            x = self.attn(x)
        return self.out(x.mean(dim=1))


def _inputs(batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (batch, L), generator=g), torch.randint(0, V, (batch, L), generator=g)


@pytest.mark.parametrize("layer", ["mha", "encoder_layer"])
def test_fast_path_attention_is_exact_under_no_grad(layer):
    torch.manual_seed(0)
    model = PreLNSelfAttention(layer).eval()
    inputs = _inputs(32, 0)
    with torch.no_grad():
        reference = model(*inputs)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    assert dmt.capture_report.path == "symbolic", str(dmt.capture_report)
    assert dmt.plan.num_towers == 2
    dmt.eval()
    for batch, seed in ((32, 0), (7, 1)):
        x = _inputs(batch, seed)
        with torch.no_grad():
            assert torch.equal(dmt(*x), model(*x))
    with torch.no_grad():
        assert torch.equal(dmt(*inputs), reference)
    assert torch.equal(dmt(*inputs), model(*inputs))  # gradients on: the slow path in both


def test_watched_run_returns_the_plain_output():
    from dmt_compile.capture.inputs import flatten_call
    from dmt_compile.capture.preconditions import IdWatch, watched_run

    torch.manual_seed(0)
    model = PreLNSelfAttention("mha").eval()
    inputs = _inputs(32, 0)
    spec, flat = flatten_call(model.forward, inputs, {})
    with torch.no_grad():
        plain = model(*inputs)
        watched = watched_run(model, inputs, {}, IdWatch(model, flat, spec, "example inputs"))
    assert torch.equal(watched, plain)
