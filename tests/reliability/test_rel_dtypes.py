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


def test_table_held_as_a_buffer_is_refused_at_transform():
    """It was accepted, then `distribute` died in lowering with AttributeError: `held` is not an nn.Parameter."""
    from dmt_compile.errors import InputError
    from rel_input_workers import table_model

    model, inputs = table_model(held_as_buffer=True)
    with pytest.raises(InputError) as info:
        dmt_compile.transform(model, "1x2", inputs)
    text = str(info.value)
    assert text.startswith("embedding table 'held' is a buffer, not a parameter"), text
    assert "nn.Parameter(tensor, requires_grad=False)" in text


@pytest.mark.distributed
def test_frozen_parameter_tables_train_distributed():
    """The fix the error names works: frozen tables as parameters run on 1x2 like the original model."""
    from dmt_compile.runtime.launch import launch_local
    from rel_input_workers import frozen_tables_step, table_model

    model, (dense, ids) = table_model(False)
    expected = model(dense, ids)
    expected.pow(2).mean().backward()
    results = launch_local(frozen_tables_step, "1x2", timeout_s=240)
    out = torch.cat([r[0] for r in results])
    assert torch.allclose(out, expected.detach(), atol=1e-6), (out, expected)
    # each rank's loss is a mean over its half: the synced gradient is the global-batch mean's
    assert torch.allclose(results[0][1], model.top.weight.grad, atol=1e-6)
    assert torch.equal(results[0][1], results[1][1])
