"""Half-precision and float64 models get Tower Modules in their own dtype; tables held as buffers are refused clearly."""
from __future__ import annotations

import copy

import pytest
import torch

import dmt_compile
from helpers import load_model

TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 1e-1, torch.float64: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("tower_module", ["linear", "dot", "cross"])
def test_compressing_tower_module_in_the_models_dtype(dtype, tower_module):
    """Same transform in float32 and in `dtype`: every Tower-Module tensor has `dtype`, with the same weights the
    outputs agree within `dtype`'s precision, and a training step gives gradients of `dtype` (it raised
    "mat1 and mat2 must have the same dtype" before)."""
    model, (dense, sparse) = load_model("example:dlrm")
    low = copy.deepcopy(model).to(dtype)
    torch.manual_seed(1)
    ref = dmt_compile.transform(model, "2x2", (dense, sparse), tower_module=tower_module)
    torch.manual_seed(1)
    dmt = dmt_compile.transform(low, "2x2", (dense.to(dtype), sparse), tower_module=tower_module)
    tm = {n: p for n, p in dmt.named_parameters() if "_tm." in n or "_decoder." in n}
    assert tm and all(p.dtype == dtype for p in tm.values()), {n: p.dtype for n, p in tm.items()}
    # layers rebuilt at a new width draw their init in their own dtype (float64 draws differ): share ref's values
    dmt.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in ref.state_dict().items()})
    out = dmt(dense.to(dtype), sparse)
    assert out.dtype == dtype
    expected = ref(dense, sparse)
    scale = float(expected.detach().abs().max()) + 1.0
    assert float((out.double() - expected.double()).abs().max()) <= TOLERANCE[dtype] * scale
    out.float().pow(2).mean().backward()
    grads = [p.grad for p in tm.values() if p.grad is not None]
    assert grads and all(g.dtype == dtype and torch.isfinite(g).all() for g in grads)
