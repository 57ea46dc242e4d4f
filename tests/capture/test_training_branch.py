"""A forward that branches on `self.training`, transformed in training mode.

Before: the graph traced in training mode held the training branch (pytorch-tabnet's `TabNetPretraining`
obfuscates its inputs at random), capture checked it against the eval-mode output, and the refusal
said only "the captured graph differs from the eager model (max |diff| = 6.51)".
Expected: the typed `CaptureError` names the branch on `self.training` with its file:line and says to
transform in eval mode (here on the fx paths alone: torch.export traces in eval mode, and where it
succeeds the capture report says the graph holds the eval-mode branch); the same model transformed in
eval mode is exact; `training` reads leave the module classes as they were. A functional dropout on the
flag (`F.dropout(x, p, training=self.training)`), traced in training mode, is no such branch: it becomes
an `nn.Dropout(p)` of the graph, which follows `train()` / `eval()` as the flag did.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.capture.capture import capture
from dmt_compile.errors import CaptureError


class Obfuscated(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, x):
        e = torch.cat([self.a(x[:, 0]), self.b(x[:, 1])], 1)
        if self.training:  # random masking in training only
            e = e * torch.bernoulli(torch.full_like(e, 0.8))
        return e.sum(1, keepdim=True)


def _ids(batch, seed=0):
    return torch.randint(0, 10, (batch, 2), generator=torch.Generator().manual_seed(seed))


def test_a_training_branch_is_named_in_the_refusal():
    model = Obfuscated().train()
    with pytest.raises(CaptureError, match=r"(?s)branches on self.training \(test_training_branch.py:\d+\).*eval mode"):
        capture(model, (_ids(8),), paths=("symbolic", "specialize", "specialize+leaf"))
    assert "training" not in vars(Obfuscated) and model.training
    report = capture(model, (_ids(8),)).report
    assert report.path.startswith("export") and "graph holds the eval-mode branch" in report.note


def test_the_same_model_in_eval_mode_is_exact():
    model = Obfuscated().eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(8),)).eval()
    with torch.no_grad():
        assert torch.equal(dmt(_ids(5, 1)), model(_ids(5, 1)))


class FunctionalDropout(nn.Module):
    """`F.dropout(x, p, training=self.training)` (attention dropout in some transformers) in place of an
    `nn.Dropout` module."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 8), nn.Embedding(10, 8)
        self.p = 0.5

    def forward(self, x):
        e = torch.cat([self.a(x[:, 0]), self.b(x[:, 1])], 1)
        e = nn.functional.dropout(e, p=self.p, training=self.training)
        return e.sum(1, keepdim=True)


def test_functional_dropout_on_the_training_flag_follows_the_mode_of_the_graph():
    # before: traced in training mode the graph held training=True, on in eval mode too; the fx paths
    # failed their check against the eval output and only torch.export (traced in eval mode) was left
    model = FunctionalDropout().train()
    captured = capture(model, (_ids(8),), paths=("symbolic", "specialize"))
    gm, x = captured.gm, _ids(5, seed=1)
    drops = [m for m in gm.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 1 and drops[0].p == 0.5
    gm.eval(), model.eval()
    with torch.no_grad():
        assert torch.equal(gm(x), model(x))
    gm.train(), model.train()
    torch.manual_seed(3)
    trained = gm(x)
    torch.manual_seed(3)
    assert torch.equal(trained, model(x))
