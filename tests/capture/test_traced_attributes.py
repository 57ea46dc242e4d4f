"""Model code that assigns module attributes in `forward` while it is traced.

Before: `self.group_matrix = self.group_matrix.to(x.device)` (pytorch_tabular's TabNet) left an fx proxy
on the module after tracing; fx reads that tensor attribute with a `get_attr` node, so the captured
graph, and every eager call after it, read the proxy and failed ("invalid __array_struct__", or a
Proxy where a tensor was expected).
Expected: the attribute has its tensor back after capture, the graph and the model both run.
"""
from __future__ import annotations

import torch
from torch import nn

import dmt_compile
from dmt_compile.capture.capture import capture


class MovesItsMatrix(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)
        self.group_matrix = torch.eye(4)  # a plain tensor attribute: no parameter, no buffer

    def forward(self, x):
        self.group_matrix = self.group_matrix.to(x.device)
        if (x < 0).any():  # leaves the symbolic path
            raise ValueError("negative ids")
        e = self.a(x[:, 0]) @ self.group_matrix + self.b(x[:, 1])
        return e.sum(1, keepdim=True)


def _ids(batch, seed=0):
    return torch.randint(0, 10, (batch, 2), generator=torch.Generator().manual_seed(seed))


def test_an_attribute_set_while_tracing_gets_its_tensor_back():
    model = MovesItsMatrix().eval()
    captured = capture(model, (_ids(8),))
    assert type(model.group_matrix) is torch.Tensor
    x = _ids(5, seed=1)
    assert torch.equal(captured.gm(x), model(x))
    dmt = dmt_compile.transform(model, "2x2", (_ids(8),)).eval()
    assert dmt.plan.num_towers == 2 and torch.equal(dmt(x), model(x))
