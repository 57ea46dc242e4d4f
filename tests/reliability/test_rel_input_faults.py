"""Inputs that cannot slip through: ids of the wrong dtype, NaN/inf ids and NaN/inf values under the guard.

The original model refuses non-integer ids in ``F.embedding``; the distributed runtime used to cast
them to int64 in the id exchange (``ids + 0.7`` trained on the truncated id, a NaN id became
INT64_MIN and failed on the table's owner, blaming the wrong rank). Now the rank that holds them
refuses them before anything is sent. ``distribute(check_finite=True)`` names the rank and the step
of a NaN/inf input, output, loss or gradient.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.errors import CollectiveError, InputError, NonFiniteError
from dmt_compile.training.finite_guard import FiniteGuard
from dmt_compile.lowering.lower import RankLayout, lower_for_rank
from dmt_compile.runtime import id_check
from dmt_compile.runtime.launch import launch_local
from helpers import load_model
from rel_input_workers import dlrm_step


def _lowered(dmt, num_hosts: int, local: int):
    layout = RankLayout(num_hosts, local, 0, 0, None, None, "intra", 0, local)
    return lower_for_rank(dmt, layout).gm


def _spoiled(how: str):
    model, (dense, sparse) = load_model("example:dlrm")
    bad = {k: v.clone() for k, v in sparse.items()}
    if how == "plus_0.7":
        bad["C5"] = bad["C5"] + 0.7
    elif how == "nan":
        bad["C5"] = bad["C5"].double()
        bad["C5"][2] = float("nan")
    elif how == "inf":
        bad["C5"] = bad["C5"].float()
        bad["C5"][2] = float("-inf")
    elif how == "whole_floats":  # float dtype, integral values: still refused, as the original model does
        bad["C5"] = bad["C5"].float()
    else:
        bad["C5"] = bad["C5"].to(getattr(torch, how))
    return model, (dense, sparse), (dense, bad)


HOWS = ["plus_0.7", "nan", "inf", "whole_floats", "int16", "uint8", "bool", "float16", "bfloat16"]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("strategy", ["sptt", "flat"])
def test_non_integer_ids_are_refused_like_the_original_model(how, strategy, monkeypatch):
    """Same verdict as the original model, on SPTT and flat programs, even with the range check off."""
    monkeypatch.setattr(id_check, "ENABLED", False)  # the dtype check does not depend on the range switch
    model, inputs, bad = _spoiled(how)
    with pytest.raises(RuntimeError, match="indices"):  # the original model refuses them too
        model(*bad)
    topo, towers = ("2x2", None) if strategy == "sptt" else ("1x4", 1)
    dmt = dmt_compile.transform(model, topo, inputs, num_towers=towers)
    gm = _lowered(dmt, *((2, 2) if strategy == "sptt" else (1, 4)))
    with pytest.raises(InputError) as info:
        gm(*dmt.input_spec.flatten(bad, {}))
    text = str(info.value)
    assert text.startswith("this process: feature 'C5' has ids of dtype torch."), text
    assert "must be torch.int64 or torch.int32" in text and "fix:" in text
    if how in ("plus_0.7", "nan", "inf"):
        assert "first non-integer value" in text and "at sample " in text, text
    if how in ("nan", "inf"):
        assert ("nan" if how == "nan" else "-inf") in text


def test_int32_ids_pass_the_check():
    """int32 ids (accepted by F.embedding) pass: the program goes on to the exchange, which needs a process group."""
    model, inputs, _ = _spoiled("plus_0.7")
    dense, sparse = inputs
    dmt = dmt_compile.transform(model, "2x2", inputs)
    gm = _lowered(dmt, 2, 2)
    with pytest.raises(Exception) as info:
        gm(*dmt.input_spec.flatten((dense, {k: v.to(torch.int32) for k, v in sparse.items()}), {}))
    assert not isinstance(info.value, InputError), info.value


@pytest.mark.distributed
def test_float_ids_on_one_rank_blame_that_rank():
    """`ids + 0.7` on rank 1 of a 2x2 run: refused on rank 1 (not truncated, not blamed on an owner)."""
    with pytest.raises(CollectiveError) as info:
        launch_local(dlrm_step, "2x2", args=("float_ids", 1), timeout_s=240, pg_timeout_s=15)
    err = info.value
    first = str(err).splitlines()[0]
    assert err.culprits[0] == 1, first
    assert "rank 1 raised InputError: rank 1: feature 'C5' has ids of dtype torch.float32 (first non-integer value" \
        in first, first
    assert all(err.failures[r].exc_type != "InputError" for r in (0, 2, 3))


# ----------------------------------------------------------------------------- check_finite


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(x)


def _guarded():
    model = _Tiny()
    return model, FiniteGuard(5, list(model.named_parameters()))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_guard_names_a_non_finite_input(value):
    model, guard = _guarded()
    x = torch.ones(4, 3)
    guard.check_inputs(["dense"], [x])
    x[2, 1] = value
    with pytest.raises(NonFiniteError, match=rf"rank 5, step 2: input dense holds 1 non-finite value \(first: {value}\)"):
        guard.check_inputs(["dense"], [x])


def test_guard_ignores_integer_inputs_and_finite_values():
    model, guard = _guarded()
    guard.check_inputs(["ids", "x"], [torch.tensor([1, 2]), torch.ones(2, 3)])
    out = guard.check_outputs(model(torch.ones(2, 3)))
    out.sum().backward()
    assert model.lin.weight.grad is not None and guard.step == 1


def test_guard_names_a_non_finite_output_and_loss():
    model, guard = _guarded()
    with torch.no_grad():
        model.lin.bias.fill_(float("inf"))
    guard.check_inputs(["x"], [torch.ones(2, 3)])
    with pytest.raises(NonFiniteError, match="rank 5, step 1: output 0 of the model holds 2 non-finite values"):
        guard.check_outputs(model(torch.ones(2, 3)))
    model, guard = _guarded()
    guard.check_inputs(["x"], [torch.ones(2, 3)])
    out = guard.check_outputs(model(torch.ones(2, 3)))
    with pytest.raises(NonFiniteError, match="the gradient of the loss at output 0 holds"):
        (out * float("inf")).sum().backward()


def test_guard_names_a_non_finite_parameter_gradient():
    model, guard = _guarded()
    guard.check_inputs(["x"], [torch.ones(2, 3)])
    out = model(torch.ones(2, 3))  # unchecked output: the parameter hook is the last line of defence
    model.lin.weight.register_hook(lambda g: g * float("nan"))  # runs after the guard's hook ...
    with pytest.raises(NonFiniteError, match="rank 5, step 1: the gradient of lin.bias"):
        (out.sum() * torch.tensor(float("inf"))).backward()  # ... so the guard sees lin.bias first
    guard.remove()
    assert not guard._handles


@pytest.mark.distributed
@pytest.mark.parametrize("fault,culprit,expect", [
    ("nan_dense", 1, "rank 1, step 1: input dense_features holds 1 non-finite value (first: nan)"),
    ("inf_loss", 2, "rank 2, step 1: the gradient of the loss at output 0 holds"),
])
def test_check_finite_names_the_rank_and_step(fault, culprit, expect):
    with pytest.raises(CollectiveError) as info:
        launch_local(dlrm_step, "2x2", args=(fault, culprit, True, fault == "inf_loss"), timeout_s=240,
                     pg_timeout_s=15)
    first = str(info.value).splitlines()[0]
    assert info.value.culprits[0] == culprit, first
    assert f"rank {culprit} raised NonFiniteError: {expect}" in first, first


@pytest.mark.distributed
def test_check_finite_changes_nothing_on_clean_data():
    on = launch_local(dlrm_step, "2x2", args=("none", 0, True), timeout_s=240)
    off = launch_local(dlrm_step, "2x2", args=("none", 0, False), timeout_s=240)
    assert on == off


@pytest.mark.distributed
def test_uneven_batches_across_ranks_match_the_original_model():
    """Rank 1 feeds 1 sample, the others 2: no hang, and every rank's loss is the original model's on its samples."""
    import os

    from dmt_compile.capture.model_spec import load_model_spec
    from rel_input_workers import ROOT

    losses = launch_local(dlrm_step, "2x2", args=("short_batch", 1), timeout_s=240)
    torch.manual_seed(0)
    model, (dense, sparse) = load_model_spec(os.path.join(ROOT, "examples", "dlrm.py:factory"), batch_size=8)
    for rank, loss in enumerate(losses):
        take = slice(2 * rank, 2 * rank + (1 if rank == 1 else 2))
        expected = model(dense[take], {k: v[take] for k, v in sparse.items()}).float().pow(2).mean()
        assert abs(loss - float(expected)) <= 1e-5 * max(1.0, abs(float(expected))), (rank, loss, float(expected))
