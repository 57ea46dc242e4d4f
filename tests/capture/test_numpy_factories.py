"""A numpy array made from a traced size and turned into a tensor (`torch.from_numpy(np.arange(seq_len))`
for the positions of a padded history, `seq_len = seq.size(1)`), in a module that holds an embedding table.

Before: numpy converted the traced size as an array ("invalid __array_struct__") on every fx path, and the
module could not become a leaf (it holds the position table): capture failed. Expected: `np.arange`
(and numpy's other array factories) on a traced value and `torch.from_numpy` of the result record one node
each, the positions follow the history length, and the rewrite is exact at another batch and length.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import dmt_compile


class Positions(nn.Module):
    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.p_embeddings = nn.Embedding(max_len + 1, dim)

    def forward(self, seq, lengths):
        len_range = torch.from_numpy(np.arange(seq.size(1))).to(seq.device)
        valid = len_range[None, :] < lengths[:, None]
        seq = (seq + self.p_embeddings(len_range[None, :] * valid.long())) * valid[:, :, None].float()
        return seq.sum(1) / lengths[:, None].float()


class HistoryModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.item, self.user = nn.Embedding(30, 4), nn.Embedding(10, 4)
        self.encoder = Positions(4, 8)

    def forward(self, user_id, history, lengths):
        return (self.encoder(self.item(history), lengths) * self.user(user_id)).sum(-1)


def _inputs(batch: int, length: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    history = torch.randint(1, 30, (batch, length), generator=g) * (torch.arange(length) < lengths[:, None])
    return torch.randint(0, 10, (batch,), generator=g), history, lengths


def _eval(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(*inputs)


def test_numpy_arange_of_a_traced_size():
    torch.manual_seed(0)
    model = HistoryModel()
    dmt = dmt_compile.transform(model, "2x2", _inputs(8, 5))
    assert dmt.plan.num_towers >= 2
    for batch, length, seed in ((8, 5, 0), (5, 3, 1), (6, 7, 2)):
        inputs = _inputs(batch, length, seed)
        assert torch.equal(_eval(dmt, inputs), _eval(model, inputs))


class CausalModel(nn.Module):
    """`np.tril(np.ones((1, 1, L, L), dtype=int))` from a traced length (a causal attention mask)."""

    def __init__(self):
        super().__init__()
        self.item, self.user = nn.Embedding(30, 4), nn.Embedding(10, 4)

    def forward(self, user_id, history, lengths):
        seq = self.item(history)
        mask = torch.from_numpy(np.tril(np.ones((1, seq.size(1), seq.size(1)), dtype=int))).to(seq.device)
        mixed = (mask.float() @ seq) / lengths[:, None, None].float()
        return (mixed.sum(1) * self.user(user_id)).sum(-1)


def test_numpy_factory_with_a_dtype_argument():
    torch.manual_seed(0)
    model = CausalModel()
    dmt = dmt_compile.transform(model, "2x2", _inputs(8, 5))
    for batch, length, seed in ((8, 5, 0), (5, 3, 1)):
        inputs = _inputs(batch, length, seed)
        assert torch.equal(_eval(dmt, inputs), _eval(model, inputs))
