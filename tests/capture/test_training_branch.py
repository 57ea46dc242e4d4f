"""A forward that branches on `self.training`, transformed in training mode.

Before: the graph traced in training mode held the training branch (pytorch-tabnet's `TabNetPretraining`
obfuscates its inputs at random), capture checked it against the eval-mode output, and the refusal
said only "the captured graph differs from the eager model (max |diff| = 6.51)".
Expected: the typed `CaptureError` names the branch on `self.training` with its file:line and says to
transform in eval mode (here on the fx paths alone: torch.export traces in eval mode, and where it
succeeds the capture report says the graph holds the eval-mode branch); the same model transformed in
eval mode is exact; `training` reads leave the module classes as they were.
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
