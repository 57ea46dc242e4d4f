"""Hashed field-aware ids remapped inside the model, feeding a low-rank DCN-v2.

Lookup style: (h) ids are remapped in forward as ``id * F + field`` (``field`` is an
``arange`` buffer) into ONE shared ``nn.Embedding(bucket_size * F, D)`` -> ``[B, F, D]``.
Idiom (not fx-traceable): ``check_tensor()`` -- ``if not isinstance(x, torch.Tensor): raise
TypeError`` -- called inside the ``LowRankCrossNet`` submodule.
Interaction: DCN-v2 low-rank cross layers (``x0 * (U (V x)) + b + x``) + MLP.
Output: ``[B, 1]`` logits. Inputs: ``(ids: LongTensor[B, 6] raw ids in [0, 150),
dense: FloatTensor[B, 3])``.
"""
import torch
from torch import nn

from ._data import dense, gen, seeded

NUM_FIELDS, BUCKETS = 6, 150


def check_tensor(x, name="input"):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


class LowRankCrossNet(nn.Module):
    def __init__(self, in_features: int, num_layers: int, low_rank: int):
        super().__init__()
        self.V = nn.ParameterList(nn.Parameter(torch.randn(low_rank, in_features) * 0.05) for _ in range(num_layers))
        self.W = nn.ParameterList(nn.Parameter(torch.randn(in_features, low_rank) * 0.05) for _ in range(num_layers))
        self.b = nn.ParameterList(nn.Parameter(torch.zeros(in_features)) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x0 = check_tensor(x0, "x0")
        x = x0
        for V, W, b in zip(self.V, self.W, self.b):
            x = x0 * (torch.matmul(W, torch.matmul(V, x.unsqueeze(-1))).squeeze(-1) + b) + x
        return x


class HashedFieldDCN(nn.Module):
    def __init__(self, num_fields=NUM_FIELDS, buckets=BUCKETS, dim=8, num_dense=3):
        super().__init__()
        self.num_fields = num_fields
        self.table = nn.Embedding(buckets * num_fields, dim)
        self.register_buffer("field", torch.arange(num_fields), persistent=False)
        width = num_fields * dim + num_dense
        self.cross = LowRankCrossNet(width, num_layers=2, low_rank=4)
        self.deep = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, ids: torch.Tensor, dense_x: torch.Tensor) -> torch.Tensor:
        global_ids = ids * self.num_fields + self.field
        emb = self.table(global_ids)
        x0 = torch.cat([emb.flatten(1), dense_x], dim=1)
        return self.deep(self.cross(x0))


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = HashedFieldDCN()
    g = gen(seed)
    ids = torch.randint(0, BUCKETS, (batch_size, NUM_FIELDS), generator=g)
    return model, (ids, dense(g, batch_size, 3))
