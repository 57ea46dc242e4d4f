"""A model only torch.export can capture: type checks on the ids in the module that owns the tables.

Lookup style: (c) dict of ``nn.Embedding`` per field, ids as columns of one ``[B, F]`` tensor.
Idiom (not fx-traceable on any fx path): ``if not isinstance(ids, torch.Tensor) or ids.dtype not in
INT_TYPES: raise`` in the root forward (a Proxy is not a Tensor, and the check sits next to the
tables, so no automatic leaf can isolate it). torch.export (non-strict) traces with real tensor
subclasses and captures it with a dynamic batch dimension.
Interaction: FM (sum-square trick) + a small MLP over the concatenated embeddings, BatchNorm and
dropout (eval-mode export turns them back into mode-following modules).
Output: ``[B, 1]`` logits. Inputs: ``(ids: LongTensor[B, 5], dense: FloatTensor[B, 2])``.
"""
import torch
from torch import nn

from ._data import dense, gen, seeded

FIELDS, VOCAB, DIM = 5, 40, 8
INT_TYPES = (torch.int64, torch.int32)


class TypeCheckedFM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tables = nn.ModuleDict({f"field{i}": nn.Embedding(VOCAB, DIM) for i in range(FIELDS)})
        self.dense = nn.Linear(2, DIM)
        self.mlp = nn.Sequential(nn.Linear((FIELDS + 1) * DIM, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.0),
                                 nn.Linear(16, 1))

    def forward(self, ids: torch.Tensor, dense_x: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dtype not in INT_TYPES:
            raise TypeError("ids must be an integer tensor")
        embs = [table(ids[:, i]) for i, table in enumerate(self.tables.values())]
        e = torch.stack(embs + [self.dense(dense_x)], dim=1)
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1, keepdim=True)
        return fm + self.mlp(e.flatten(1))


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = TypeCheckedFM()
    g = gen(seed)
    ids = torch.randint(0, VOCAB, (batch_size, FIELDS), generator=g)
    return model, (ids, dense(g, batch_size, 2))
