"""Every model class of real public CTR libraries: captured, split into towers exactly, trained compressed.

For each model (tests/real_zoo/zoo_<lib>.py, the library's own classes at batch 32, dim 16):

* identity Tower Modules on 2x2: at least two towers when the model has several fields, and the
  output equals the original model's exactly (eval mode) at the example batch and at batch 7;
* `linear` Tower Modules with compression 4: forward, backward and Adam steps run and the loss
  goes down on a fixed batch.

Skipped with a reason: a library that is not installed, a model whose own code is broken in the
pinned release, models that are random in eval mode (exactness only), models no path can trace.
"""
from __future__ import annotations

import pytest
import torch

import dmt_compile
import real_zoo
from dmt_compile.errors import SpecializationError
from helpers import first_tensor

CASES = real_zoo.cases()


def _build(lib: str, name: str, batch_size: int = 32, seed: int = 0):
    key = f"{lib}:{name}"
    if not real_zoo.installed(lib):
        pytest.skip(f"{real_zoo.LIBRARIES[lib][0]} is not installed (.ci/run installs the real-package zoos)")
    if key in real_zoo.LIBRARY_BROKEN:
        pytest.skip(f"{key} is broken in its own release: {real_zoo.LIBRARY_BROKEN[key]}")
    if key in real_zoo.UNCAPTURABLE:
        pytest.skip(f"{key} cannot be captured by any path: {real_zoo.UNCAPTURABLE[key]}")
    return real_zoo.zoo_module(lib).MODELS[name](batch_size=batch_size, seed=seed)


def _outputs(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(*inputs)


@pytest.mark.parametrize("lib,name", CASES, ids=[f"{lib}:{name}" for lib, name in CASES])
def test_identity_towers_are_exact(lib, name):
    model, inputs = _build(lib, name)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    if len(dmt.detection.features) >= 2:
        assert dmt.plan.num_towers == 2, dmt.plan
    if f"{lib}:{name}" in real_zoo.STOCHASTIC:
        return
    _same(_outputs(dmt, inputs), _outputs(model, inputs))
    _, small = _build(lib, name, batch_size=7, seed=1)
    try:
        out = _outputs(dmt, small)
    except SpecializationError:  # a branch on the batch size (e.g. YoutubeSBC's "last batch"): refused, not wrong
        assert dmt.capture_report.guards or dmt.capture_report.path == "export-static"
        return
    _same(out, _outputs(model, small))


def _same(a, b):
    torch.testing.assert_close(first_tensor(a), first_tensor(b), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("lib,name", CASES, ids=[f"{lib}:{name}" for lib, name in CASES])
def test_linear_c4_towers_train(lib, name):
    model, inputs = _build(lib, name)
    if not torch.isfinite(first_tensor(_outputs(model, inputs))).all():
        pytest.skip(f"{lib}:{name} itself returns NaN or inf at these sizes: nothing to train")
    model.train()
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)
    dmt.train()
    out = first_tensor(dmt(*inputs))
    target = torch.rand(out.shape, generator=torch.Generator().manual_seed(7))
    opt = torch.optim.Adam(dmt.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = ((first_tensor(dmt(*inputs)) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses[-3:]) < losses[0], losses
