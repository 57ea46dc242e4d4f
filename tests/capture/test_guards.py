"""Guards: value-dependent answers baked by the specialising tracer are re-checked at every call.

One test per guard kind (bool, int, len): a later input that would take the other branch raises
SpecializationError naming the line of model code — never a silent wrong result. Static answers
(rank, non-batch dims) are not guarded and other batch sizes keep working.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.capture.guards import dmt_guard
from dmt_compile.errors import SpecializationError
from dmt_compile.lowering.lower import RankLayout, lower_for_rank

LINE = {}


class BoolBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, x, dense):
        e = self.a(x[:, 0]) + self.b(x[:, 1])
        if dense.sum() > 0:  # value-dependent: guarded
            return e.sum(1, keepdim=True) + dense
        return e.sum(1, keepdim=True) - dense


class IntBranch(BoolBranch):
    def forward(self, x, dense):
        e = self.a(x[:, 0]) + self.b(x[:, 1])
        k = int(x.max())  # value-dependent int: guarded
        return e[:, :1] * k + dense


class LenOverBatch(BoolBranch):
    def forward(self, x, dense):
        rows = [r.sum() for r in torch.unbind(self.a(x[:, 0]) + self.b(x[:, 1]), 0)]  # len = batch: guarded
        return torch.stack(rows).unsqueeze(1) + dense


class BatchSizeBranch(BoolBranch):
    """A branch on the batch size the model was built for (torch-rechub's YoutubeSBC: its "last batch")."""

    batch_size = 8

    def forward(self, x, dense):
        e = self.a(x[:, 0]) + self.b(x[:, 1])
        if e.shape[0] != self.batch_size:  # batch-dependent: guarded
            return e[:, :1] * 0 + dense
        return e.sum(1, keepdim=True) + dense


class StaticAnswers(BoolBranch):
    def forward(self, x, dense):
        e = torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)
        if e.dim() == 3 and len(e.shape) == 3:  # rank: static, not guarded
            parts = [p.sum(1, keepdim=True) for p in torch.unbind(e, 1)]  # len = fields: static
            return sum(parts) + dense
        return dense


def _inputs(batch=8, sign=1.0, vocab=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, 2), generator=g), sign * torch.ones(batch, 1)


def _transform(model):
    dmt = dmt_compile.transform(model, "2x2", _inputs())
    assert dmt.capture_report.path == "specialize"
    return dmt


def test_bool_guard_same_branch_exact_other_branch_raises_naming_the_line():
    model = BoolBranch()
    dmt = _transform(model).eval()
    x, d = _inputs(seed=1)
    assert torch.equal(dmt(x, d), model.eval()(x, d))
    assert [s.kind for s in dmt.capture_report.guards] == ["bool"]
    with pytest.raises(SpecializationError, match=r"test_guards\.py:\d+.*bool\(\.\.\.\) is False now but was True"):
        dmt(*_inputs(sign=-1.0))


def test_int_guard():
    model = IntBranch()
    dmt = _transform(model).eval()
    x, d = _inputs()
    assert torch.equal(dmt(x, d), model.eval()(x, d))
    with pytest.raises(SpecializationError, match=r"int\(\.\.\.\) is 3 now but was 9"):
        dmt(torch.full((8, 2), 3), d)


def test_len_guard_on_the_batch():
    dmt = _transform(LenOverBatch())
    assert dmt(*_inputs(seed=2)).shape == (8, 1)
    with pytest.raises(SpecializationError, match=r"len\(\.\.\.\) is 5 now but was 8"):
        dmt(*_inputs(batch=5))


def test_a_branch_on_the_batch_size_is_named_with_its_fix():
    dmt = _transform(BatchSizeBranch())
    assert dmt(*_inputs(seed=2)).shape == (8, 1)
    with pytest.raises(SpecializationError, match=r"batch size takes a different branch.*depends on the batch size") \
            as raised:
        dmt(*_inputs(batch=5))
    assert "example inputs of the batch size it will be called with" in str(raised.value)


def test_static_answers_are_not_guarded_and_other_batches_work():
    model = StaticAnswers()
    dmt = _transform(model).eval()
    assert dmt.capture_report.guards == () and len(dmt.capture_report.specializations) >= 2
    x, d = _inputs(batch=3, seed=4)
    assert torch.equal(dmt(x, d), model.eval()(x, d))


def test_guards_survive_lowering_to_every_rank():
    dmt = _transform(BoolBranch())
    for rank in range(4):
        host, local = divmod(rank, 2)
        gm = lower_for_rank(dmt, RankLayout(2, 2, host, local, None, None, "intra", local, 2)).gm
        assert sum(n.target is dmt_guard for n in gm.graph.nodes) == 1
