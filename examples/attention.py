"""AutoInt (Song et al., 2019): multi-head self-attention over field embeddings.

Each sparse feature has its own ``nn.Embedding`` (``nn.ModuleDict``, dict input
``{name: LongTensor[B]}``); the field embeddings are stacked into ``[B, F, D]`` and passed
through two residual ``nn.MultiheadAttention`` blocks; the flattened result plus a small
MLP on the dense features produces ``[B, 1]`` logits.

MODEL_SPEC: ``examples/attention.py:factory``.
"""
from typing import Dict

import torch
from torch import nn

SPARSE_FEATURES = {
    "user_id": 1000, "item_id": 1000, "category": 80, "brand": 400, "shop": 600,
    "city": 150, "device": 50, "hour_of_day": 64, "weekday": 50, "campaign": 250,
}
NUM_DENSE = 3


class SelfAttentionBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=0.0, batch_first=True)
        self.residual = nn.Linear(dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attn(x, x, x, need_weights=False)
        return torch.relu(out + self.residual(x))


class AutoInt(nn.Module):
    def __init__(self, sparse_features: Dict[str, int], num_dense: int, dim: int = 16,
                 num_heads: int = 2, num_layers: int = 2):
        super().__init__()
        self.names = list(sparse_features)
        self.embedding = nn.ModuleDict({k: nn.Embedding(v, dim) for k, v in sparse_features.items()})
        self.blocks = nn.Sequential(*[SelfAttentionBlock(dim, num_heads) for _ in range(num_layers)])
        self.dense_mlp = nn.Sequential(nn.Linear(num_dense, 16), nn.ReLU())
        self.head = nn.Linear(len(sparse_features) * dim + 16, 1)

    def forward(self, sparse: Dict[str, torch.Tensor], dense: torch.Tensor) -> torch.Tensor:
        fields = torch.stack([self.embedding[k](sparse[k]) for k in self.names], dim=1)  # [B, F, D]
        attended = self.blocks(fields)
        return self.head(torch.cat([attended.flatten(start_dim=1), self.dense_mlp(dense)], dim=1))


def factory(batch_size: int = 8, seed: int = 0):
    """Returns ``(model, ({name: LongTensor[B]} for 10 features, dense [B, 3] float))``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoInt(SPARSE_FEATURES, NUM_DENSE)
    g = torch.Generator().manual_seed(seed + 1)
    sparse = {k: torch.randint(0, v, (batch_size,), generator=g) for k, v in SPARSE_FEATURES.items()}
    return model, (sparse, torch.randn(batch_size, NUM_DENSE, generator=g))
