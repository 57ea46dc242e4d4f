"""Every user-facing error path raises a typed dmt_compile error naming the problem and the fix."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile import errors
from dmt_compile.tools.cli import main
from helpers import load_model


class NoEmbeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Linear(4, 1)

    def forward(self, x):
        return self.mlp(x)


class RejectsProxiesAtRoot(nn.Module):
    """Leaves the tensor world (numpy on the ids) in the module that owns the tables: no path can capture it."""

    def __init__(self):
        super().__init__()
        self.a = nn.Embedding(10, 4)
        self.b = nn.Embedding(10, 4)

    def forward(self, ids):
        parity = torch.as_tensor(np.unique(ids.numpy()) % 2)[:1]
        return (self.a(ids[:, 0]) * self.b(ids[:, 1])).sum(1, keepdim=True) + parity


def _dlrm():
    return load_model("example:dlrm")


def _has_fix(exc: errors.DmtError) -> None:
    assert exc.problem and exc.fix, "every error names the problem and the fix"
    assert "fix:" in str(exc)


def test_model_without_embeddings():
    with pytest.raises(errors.DetectionError, match="no embedding lookup") as info:
        dmt_compile.transform(NoEmbeddings(), "2x2", (torch.randn(3, 4),))
    _has_fix(info.value)


@pytest.mark.parametrize("spec", ["2by4", "0x4", "2x0", "", "x4"])
def test_malformed_topology(spec):
    model, inputs = _dlrm()
    with pytest.raises(errors.TopologyError) as info:
        dmt_compile.transform(model, spec, inputs)
    _has_fix(info.value)


def test_more_towers_than_feature_groups():
    model, inputs = _dlrm()
    with pytest.raises(errors.PlanError, match="towers requested") as info:
        dmt_compile.transform(model, "2x2", inputs, num_towers=27)
    _has_fix(info.value)


def test_feature_pinned_twice():
    model, inputs = _dlrm()
    with pytest.raises(errors.PlanError, match="pinned twice"):
        dmt_compile.transform(model, "2x2", inputs, towers=[["C1", "C2"], ["C1"]])


def test_feature_pinned_to_missing_tower():
    model, inputs = _dlrm()
    with pytest.raises(errors.PlanError, match="does not exist") as info:
        dmt_compile.transform(model, "2x2", inputs, towers={"C1": 5})
    _has_fix(info.value)


def test_unknown_pinned_feature_lists_known_ones():
    model, inputs = _dlrm()
    with pytest.raises(errors.PlanError, match="not a sparse feature") as info:
        dmt_compile.transform(model, "2x2", inputs, towers={"nope": 0})
    assert "C1" in info.value.fix


def test_group_pinned_apart():
    model, inputs = load_model("zoo:shared_fibinet")
    with pytest.raises(errors.PlanError, match="must share a tower"):
        dmt_compile.transform(model, "2x2", inputs, towers={"user_id": 0, "target_user_id": 1})


def test_example_inputs_that_do_not_run():
    model, _ = _dlrm()
    with pytest.raises(errors.InputError, match="does not run on example_inputs") as info:
        dmt_compile.transform(model, "2x2", (torch.randn(3, 2),))
    _has_fix(info.value)


def test_missing_example_inputs():
    model, _ = _dlrm()
    with pytest.raises(errors.InputError, match="example_inputs are required"):
        dmt_compile.transform(model, "2x2")


def test_model_that_cannot_be_captured():
    model = RejectsProxiesAtRoot()
    with pytest.raises(errors.CaptureError) as info:
        dmt_compile.transform(model, "2x2", (torch.randint(0, 10, (4, 2)),))
    text = str(info.value)
    for path in ("symbolic", "specialize", "export", "export-static"):
        assert f"{path}: " in text
    assert "\n" not in info.value.problem  # one line: every path's reason, with the model's source line
    assert ".py:" in info.value.problem  # where in the model's code it failed
    _has_fix(info.value)


def test_unknown_tower_module_lists_valid_ones():
    model, inputs = _dlrm()
    with pytest.raises(errors.TowerModuleError, match="unknown tower_module") as info:
        dmt_compile.transform(model, "2x2", inputs, tower_module="mystery")
    assert "identity" in info.value.fix and "linear" in info.value.fix


def test_identity_cannot_compress():
    model, inputs = _dlrm()
    with pytest.raises(errors.TowerModuleError, match="cannot compress"):
        dmt_compile.transform(model, "2x2", inputs, compression=4)


def test_compression_larger_than_tower_width_is_clamped_with_a_note():
    class Narrow(nn.Module):  # 4-wide embeddings: a one-feature tower has width 4
        def __init__(self):
            super().__init__()
            self.t = nn.ModuleList([nn.Embedding(10, 4) for _ in range(3)])

        def forward(self, x):
            return torch.cat([t(x[:, i]) for i, t in enumerate(self.t)], 1).sum(1, keepdim=True)

    model, x = Narrow(), torch.randint(0, 10, (4, 3))
    dmt = dmt_compile.transform(model, "2x2", (x,), tower_module="linear", compression=8,
                                towers=[["x[:,0]"], ["x[:,1]", "x[:,2]"]])
    assert [d.width_out for d in dmt.plan.details] == [1, 1]  # widths 4 and 8: both leave as one element
    assert [n for n in dmt.plan.notes if "not 8" in n] == [
        "tower 0 compresses by 4, not 8: its embedding width is 4 (it leaves as one; fewer towers or a smaller "
        "compression keep the ratio)"]
    assert dmt(x).shape == model(x).shape


@pytest.mark.parametrize("c", [0.5, 17, "4", True])
def test_compression_out_of_range(c):
    model, inputs = _dlrm()
    with pytest.raises(errors.TowerModuleError, match="compression must be"):
        dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=c)


def test_transformed_model_called_with_other_structure():
    model, inputs = _dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)
    dense, sparse = inputs
    with pytest.raises(errors.InputError, match="keys"):
        dmt(dense, {k: v for k, v in list(sparse.items())[:-1]})
    with pytest.raises(errors.InputError):
        dmt(dense)


def test_not_a_module():
    with pytest.raises(errors.InputError, match="nn.Module"):
        dmt_compile.transform(lambda x: x, "2x2", (torch.randn(2),))


@pytest.mark.parametrize("spec", ["examples/dlrm.py", "examples/nope.py:factory", "examples/dlrm.py:nothing",
                                  "no_such_module_xyz:factory"])
def test_bad_model_spec_exits_2_with_message(spec, capsys):
    code = main(["dump", spec, "--topology", "2x2"], stdout=io.StringIO())
    assert code == 2
    assert "ModelSpecError" in capsys.readouterr().err


def test_pass_failure_names_the_pass(monkeypatch):
    from dmt_compile.passes import sptt_rewrite

    def boom(self, gm, ctx):
        raise RuntimeError("synthetic failure")

    monkeypatch.setattr(sptt_rewrite.SpttRewrite, "call", boom)
    model, inputs = _dlrm()
    with pytest.raises(errors.PassError, match="sptt-rewrite") as info:
        dmt_compile.transform(model, "2x2", inputs)
    assert info.value.prior == ["split-collections", "batch-major-lookups", "split-tables", "detect", "plan-towers",
                                 "plan-feed"]
    assert isinstance(info.value.__cause__, RuntimeError)


def test_unknown_dump_format_is_a_typed_error_listing_the_formats():
    model, inputs = _dlrm()
    dmt = dmt_compile.transform(model, "2x2", inputs)
    with pytest.raises(errors.InputError, match="unknown dump format 'plan'") as info:
        dmt.dump("plan")
    assert "summary" in info.value.fix and "json" in info.value.fix
    assert isinstance(info.value, ValueError)  # still a ValueError for callers that caught that
