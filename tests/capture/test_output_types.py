"""Outputs the rewrite returns as the model's own types (capture/tracer.py, ir/shapes.py).

Before: a dataclass output failed capture ("Boolean value of Tensor with more than one value is
ambiguous": the graph check compared it with `==`), detection found no batch size in it, and a
dict subclass (an `OrderedDict` subclass, a `ModelOutput`-style mapping) came back as a plain dict.
Expected: dataclass, dict-subclass and namedtuple outputs are rebuilt as their own type, exact at two
batch sizes, at identity and at linear c=4; `first_tensor` reads a dataclass's first field.
"""
from __future__ import annotations

import collections
import dataclasses
import typing

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.ir.shapes import output_batch_size, tree_max_abs_diff
from dmt_compile.tools.verify import first_tensor

V, D, FIELDS = 10, 4, 4


@dataclasses.dataclass
class Scores:
    logit: torch.Tensor
    embeddings: torch.Tensor


class Mapping(collections.OrderedDict):
    pass


class Pair(typing.NamedTuple):
    logit: torch.Tensor
    pooled: torch.Tensor


class Outputs(nn.Module):
    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.tables = nn.ModuleList(nn.Embedding(V, D) for _ in range(FIELDS))
        self.top = nn.Linear(FIELDS * D, 1)

    def forward(self, x):
        e = torch.stack([t(x[:, i]) for i, t in enumerate(self.tables)], 1)
        logit = self.top(e.flatten(1))
        if self.kind == "dataclass":
            return Scores(logit, e)
        if self.kind == "mapping":
            return Mapping(logit=logit, pooled=e.sum(1))
        return Pair(logit, e.sum(1))


def _ids(batch: int, seed: int) -> torch.Tensor:
    return torch.randint(0, V, (batch, FIELDS), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind, cls", [("dataclass", Scores), ("mapping", Mapping), ("namedtuple", Pair)])
@pytest.mark.parametrize("tower_module", [None, "linear"])
def test_outputs_come_back_as_the_models_own_type(kind, cls, tower_module):
    model = Outputs(kind).eval()
    options = {"tower_module": tower_module, "compression": 4} if tower_module else {}
    dmt = dmt_compile.transform(model, "2x2", (_ids(16, 0),), **options)
    assert dmt.plan.num_towers == 2
    for batch, seed in ((16, 0), (5, 1)):
        out, ref = dmt(_ids(batch, seed)), model(_ids(batch, seed))
        assert type(out) is cls
        assert first_tensor(out).shape == (batch, 1)
        if tower_module is None:
            assert tree_max_abs_diff(out, ref) == 0.0


def test_output_helpers_read_dataclasses():
    e = torch.zeros(3, 2)
    assert output_batch_size(Scores(torch.zeros(3, 1), e)) == 3
    assert tree_max_abs_diff(Scores(e, e), Scores(e, e + 1)) == 1.0
    assert tree_max_abs_diff(Scores(e, e), Pair(e, e)) is None  # another type: another structure
    assert first_tensor(Scores(e[:, :1], e)).shape == (3, 1)
