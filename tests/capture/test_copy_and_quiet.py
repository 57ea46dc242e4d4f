"""transform never fails to copy a model a user has trained, and stays quiet while falling back."""
from __future__ import annotations

import threading

import torch
from torch import nn

import dmt_compile
from dmt_compile.capture import copy_model


class StoresScores(nn.Module):
    """Keeps its attention scores (a non-leaf tensor) on self, like DeepCTR's AFM."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)
        self.att = nn.Linear(4, 1)
        self.lock = threading.Lock()  # and something that cannot be copied at all
        self.scores = None

    def forward(self, x):
        e = torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)
        self.scores = torch.softmax(self.att(e), dim=1)
        return (self.scores * e).sum((1, 2)).unsqueeze(1)


def _x(seed=0):
    return torch.randint(0, 10, (8, 2), generator=torch.Generator().manual_seed(seed))


def test_a_trained_model_with_stale_activations_and_a_lock_is_copied_not_shared():
    model = StoresScores()
    loss = model(_x()).sum()
    loss.backward()  # now self.scores is a non-leaf tensor with history
    dmt = dmt_compile.transform(model, "2x2", (_x(),))
    model.eval()
    dmt.eval()
    assert torch.equal(dmt(_x(1)), model(_x(1)))
    theirs = {id(p) for p in model.parameters()}
    assert not theirs & {id(p) for p in dmt.parameters()}


def test_copy_model_detaches_stale_tensors_but_keeps_their_values():
    for keep_lock in (False, True):  # deepcopy with detached stale tensors, then the structural copy
        model = StoresScores()
        if not keep_lock:
            del model.lock
        model(_x()).sum().backward()
        copied = copy_model(model)
        assert copied.scores.grad_fn is None and torch.equal(copied.scores, model.scores.detach())
        assert copied.a.weight is not model.a.weight and torch.equal(copied.a.weight, model.a.weight)


def test_failing_fallbacks_and_failing_calls_print_nothing(capfd):
    class Branchy(StoresScores):
        def forward(self, x, dense):
            e = self.a(x[:, 0]) + self.b(x[:, 1])
            return (e.sum(1, keepdim=True) if e.sum() > 0 else -e.sum(1, keepdim=True)) + dense

    dmt = dmt_compile.transform(Branchy(), "2x2", (_x(), torch.zeros(8, 1)))  # symbolic fails, then specialize
    try:
        dmt(_x(), torch.zeros(3, 1))  # wrong dense shape: fails inside the generated graph code
    except RuntimeError:
        pass
    else:
        raise AssertionError("a shape mismatch must raise")
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "Call using an FX-traced Module" not in err
