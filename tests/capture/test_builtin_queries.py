"""Python builtins asked about a traced value in model code: `len(x)`, `torch.is_tensor(x)`,
`isinstance(x, torch.Tensor)`, and a buffer indexed by a traced index (torch asks the index its length).

Before: each was answered from the example value as if the proxy were a Python object — `len(q)` baked
the example batch size into `q.reshape(len(q), ...)` (a guard then refused every other batch size),
`is_tensor(proxy)` was False (the model took its "tuple of tensors" branch and unpacked the proxy along
dim 0), and `buffer[ids]` added batch-size guards the lookup never needed.
Expected: the graph holds `x.size(0)` and the buffer's `__getitem__`, runs exactly at other batch sizes,
and has no guard.
"""
from __future__ import annotations

import torch
from torch import nn

import dmt_compile
from dmt_compile.capture.capture import capture


class LenOfBatch(nn.Module):
    """A CLS token expanded to `len(x)` and a reshape to `len(q)` (multi-head attention's batch_size)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Embedding(10, 4), nn.Embedding(10, 4)
        self.cls = nn.Parameter(torch.randn(4))

    def forward(self, x):
        e = torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)
        if e.dim() != 3:  # only here to leave the symbolic path
            raise ValueError("rank")
        e = torch.cat([self.cls.view(1, 1, -1).expand(len(x), 1, -1), e], dim=1)
        batch_size = len(e)
        return e.reshape(batch_size, -1).sum(1, keepdim=True)


class TensorOrTuple(LenOfBatch):
    """`inp` is a tensor of ids or a (ids, other) pair: the helper asks which with torch.is_tensor / isinstance."""

    @staticmethod
    def _split(inp):
        if torch.is_tensor(inp) and isinstance(inp, torch.Tensor):
            return inp, None
        first, second = inp
        return first, second

    def forward(self, x):
        ids, _ = self._split(x)
        if ids.dim() != 2:
            raise ValueError("rank")
        return (self.a(ids[:, 0]) * self.b(ids[:, 1])).sum(1, keepdim=True)


class BufferIndexedByIds(LenOfBatch):
    """Ids remapped through a buffer before the lookup: `self.remap[x]`."""

    def __init__(self):
        super().__init__()
        self.register_buffer("remap", torch.arange(10).flip(0))

    def forward(self, x):
        if x.sum() < 0:
            raise ValueError("negative ids")
        y = self.remap[x]
        return (self.a(y[:, 0]) + self.b(y[:, 1])).sum(1, keepdim=True)


def _ids(batch, seed=0):
    return torch.randint(0, 10, (batch, 2), generator=torch.Generator().manual_seed(seed))


def test_len_of_a_traced_tensor_is_its_traced_size():
    model = LenOfBatch().eval()
    captured = capture(model, (_ids(8),))
    assert captured.report.path == "specialize"
    assert captured.report.guards == ()
    assert "expand(size, 1, -1)" in captured.gm.code and "reshape(size_1, -1)" in captured.gm.code
    x = _ids(3, seed=1)
    assert torch.equal(captured.gm(x), model(x))


def test_is_tensor_and_isinstance_of_a_traced_tensor_are_true():
    model = TensorOrTuple().eval()
    dmt = dmt_compile.transform(model, "2x2", (_ids(8),)).eval()
    assert dmt.capture_report.path == "specialize" and dmt.plan.num_towers == 2
    for batch in (8, 5):
        x = _ids(batch, seed=batch)
        assert torch.equal(dmt(x), model(x))


def test_buffer_indexed_by_traced_ids_needs_no_batch_guard():
    model = BufferIndexedByIds().eval()
    captured = capture(model, (_ids(8),))
    assert [s.kind for s in captured.report.guards] == ["bool"]  # the data check only, no len() of the ids
    assert "remap.__getitem__(x)" in captured.gm.code
    x = _ids(5, seed=3)
    assert torch.equal(captured.gm(x), model(x))
