"""`ir.constants` alone on small graphs: which values fold (Before: the forward; Expected: the value)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dmt_compile.capture import capture
from dmt_compile.ir.constants import NOT_CONSTANT, Constants


class Offsets(nn.Module):
    """Each returned value is one case; `x` is a [B, 3] id matrix (B varies, 3 does not)."""

    def __init__(self):
        super().__init__()
        self.offsets = np.array([0, 3, 7])
        self.rows = 5
        self.register_buffer("buf", torch.tensor([0, 3, 7]))
        self.table = nn.Embedding(100, 2)

    def forward(self, x):
        cases = {
            "new_tensor": x.new_tensor(self.offsets),
            "as_tensor_device": torch.as_tensor(self.offsets, device=x.device),
            "arange_times_rows": torch.arange(x.shape[1], device=x.device) * self.rows,
            "tensor_cumsum": torch.tensor([0, 3, 4]).cumsum(0),
            "new_zeros_non_batch": x.new_zeros(x.shape[1:]),
            "buffer_view": self.buf.unsqueeze(0),
            "from_numpy_to": torch.from_numpy(np.cumsum([0, 3, 4])).to(x.device),
            "size_math": x.new_full((1,), x.size(1) * 2),
            "batch_size": x.new_full((1,), x.shape[0]),
            "data": x + 1,
            "new_zeros_batch": x.new_zeros(x.shape),
            "lookup": self.table(x),
        }
        return tuple(cases.values())


EXPECTED = {
    "new_tensor": [0, 3, 7], "as_tensor_device": [0, 3, 7], "arange_times_rows": [0, 5, 10],
    "tensor_cumsum": [0, 3, 7], "new_zeros_non_batch": [0, 0, 0], "buffer_view": [[0, 3, 7]],
    "from_numpy_to": [0, 3, 7], "size_math": [6],
    "batch_size": NOT_CONSTANT, "data": NOT_CONSTANT, "new_zeros_batch": NOT_CONSTANT, "lookup": NOT_CONSTANT,
}


def _case_nodes():
    gm = capture(Offsets(), (torch.zeros(4, 3, dtype=torch.long),)).gm
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return gm, dict(zip(EXPECTED, out.args[0]))


@pytest.mark.parametrize("case", list(EXPECTED))
def test_folds_exactly_the_constant_values(case):
    gm, nodes = _case_nodes()
    value = Constants(gm).value(nodes[case])
    expected = EXPECTED[case]
    if expected is NOT_CONSTANT:
        assert value is NOT_CONSTANT or not Constants(gm).is_constant(nodes[case])
    else:
        assert torch.equal(torch.as_tensor(value), torch.tensor(expected))


def test_never_calls_an_op_with_a_node():
    """An op that would raise on a Node argument (the old fold did) is just not constant."""
    class M(nn.Module):
        def forward(self, x):
            return torch.stack([x, x.new_tensor([1, 2])])
    gm = capture(M(), (torch.zeros(2, dtype=torch.long),)).gm
    stack = next(n for n in gm.graph.nodes if n.op == "call_function" and n.target is torch.stack)
    assert Constants(gm).value(stack) is NOT_CONSTANT


def test_random_ops_never_fold():
    gm = torch.fx.symbolic_trace(nn.Dropout(0.5))
    drop = next(n for n in gm.graph.nodes if n.op in ("call_function", "call_module"))
    assert Constants(gm).value(drop) is NOT_CONSTANT
