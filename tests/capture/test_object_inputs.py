"""Inputs that are objects holding tensors in their attributes, not tensors, dicts or tuples.

Before: an input of any other class (PyTorch Frame's `TensorFrame`, a batch dataclass) was a constant
of the input spec: the graph read the example's tensors, detection found "no embedding lookup", and
a call with another batch was refused as a changed constant. `len(frame)`, whose `__len__` returns the
rows of its first tensor, failed while tracing ("'Proxy' object cannot be interpreted as an integer").
Expected: the object's tensors are graph inputs named by attribute path, the traced call gets a new
object of the same class (its `__init__` not run), `len(obj)` is the traced batch size, and the
rewrite is exact at other batch sizes; a call with another class is a typed `InputError`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.errors import InputError


class Kind(enum.Enum):
    categorical = "categorical"
    numerical = "numerical"


class Frame:
    """A TensorFrame-like container: tensors in a dict keyed by an Enum, column names, a validating
    constructor and a `__len__` read off the first tensor."""

    def __init__(self, feat_dict, names):
        self.feat_dict, self.names = feat_dict, names
        if any(v.dim() != 2 for v in feat_dict.values()):
            raise ValueError("2-D features only")

    def __len__(self):
        return len(next(iter(self.feat_dict.values())))


@dataclass
class Batch:
    ids: torch.Tensor
    dense: torch.Tensor
    label: str = "click"


class FrameModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, 4) for n in (5, 7, 9))
        self.num = nn.Linear(2, 4)
        self.pad = nn.Parameter(torch.randn(1, 4))

    def forward(self, frame):
        x = frame.feat_dict[Kind.categorical]
        e = torch.stack([t(x[:, i]) for i, t in enumerate(self.tables)], 1)
        e = torch.cat([e, self.pad.unsqueeze(0).repeat(len(frame), 1, 1)], 1)  # len(frame): the batch size
        return e.flatten(1).sum(1, keepdim=True) + self.num(frame.feat_dict[Kind.numerical]).sum(1, keepdim=True)


class BatchModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)

    def forward(self, batch):
        assert batch.label == "click"
        return (self.a(batch.ids[:, 0]) * self.b(batch.ids[:, 1])).sum(1, keepdim=True) + batch.dense


def _frame(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, n, (batch,), generator=g) for n in (5, 7, 9)], 1)
    return Frame({Kind.categorical: cat, Kind.numerical: torch.rand(batch, 2, generator=g)}, ["a", "b", "c"])


def _exact(dmt, model, inputs):
    model.eval()
    dmt.eval()
    with torch.no_grad():
        assert torch.equal(dmt(*inputs), model(*inputs))


def test_an_object_holding_tensors_is_a_container_of_graph_inputs():
    torch.manual_seed(0)
    model = FrameModel()
    dmt = dmt_compile.transform(model, "2x2", (_frame(8),))
    assert [f for f in dmt.detection.features] == ["categorical[:,0]", "categorical[:,1]", "categorical[:,2]"]
    assert dmt.plan.num_towers == 2
    for batch, seed in ((8, 0), (5, 1)):
        _exact(dmt, model, (_frame(batch, seed),))
    with pytest.raises(InputError, match="must be a Frame"):
        dmt({Kind.categorical: _frame(8).feat_dict[Kind.categorical]})


def test_a_dataclass_batch_and_its_constants():
    torch.manual_seed(0)
    model = BatchModel()

    def batch(n, seed=0, label="click"):
        g = torch.Generator().manual_seed(seed)
        return Batch(torch.randint(0, 10, (n, 2), generator=g), torch.rand(n, 1, generator=g), label)

    dmt = dmt_compile.transform(model, "2x2", (batch(8),))
    assert dmt.plan.num_towers == 2
    _exact(dmt, model, (batch(5, 1),))
    with pytest.raises(InputError, match="was the constant 'click'"):
        dmt(batch(8, label="view"))


def test_an_object_without_tensors_stays_a_constant():
    from dmt_compile.capture.inputs import flatten_call

    class Options:
        def __init__(self):
            self.scale = 2.0

    def fn(x, options):
        return x

    spec, flat = flatten_call(fn, (torch.zeros(3, 2, dtype=torch.long), Options()))
    assert [leaf.name for leaf in spec.leaves] == ["x"] and len(flat) == 1


def test_a_list_of_one_tensor_per_sample_is_refused_with_the_padding_fix():
    """A ragged input (one id tensor per sample, padded inside forward) has as many graph inputs as the example
    batch had samples: a batch of another size is refused, naming the construct and the fix."""
    from dmt_compile.errors import InputError

    class Ragged(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.user, self.item = torch.nn.Embedding(10, 4), torch.nn.Embedding(10, 4, padding_idx=0)
            self.top = torch.nn.Linear(8, 1)

        def forward(self, user, history):
            padded = torch.nn.utils.rnn.pad_sequence(history, batch_first=True)
            return self.top(torch.cat([self.user(user), self.item(padded).sum(1)], 1))

    def batch(b):
        return torch.arange(b) % 10, [torch.arange(1, 2 + i % 3) for i in range(b)]

    dmt = dmt_compile.transform(Ragged(), "2x2", batch(6))
    with pytest.raises(InputError, match=r"(?s)got 5 items \(a list of one tensor per sample.*pad_sequence"):
        dmt(*batch(5))
