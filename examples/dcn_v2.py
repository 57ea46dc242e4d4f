"""DCN-v2 (Wang et al., 2021), stacked structure, over one Criteo-style feature matrix.

The input is a single float matrix ``X[B, 13 + 26]``: 13 dense columns followed by 26
categorical columns whose ids are stored as floats (as a CSV/NumPy loader produces them).
Each categorical column is sliced out with ``X[:, i].long()`` and looked up in its own
``nn.Embedding`` (``nn.ModuleList``). The concatenated embeddings and dense features go
through a full-rank cross network and then a deep MLP, giving ``[B, 1]`` logits.

MODEL_SPEC: ``examples/dcn_v2.py:factory``.
"""
import torch
import torch.nn as nn

NUM_DENSE = 13
FIELD_DIMS = [1000, 550, 990, 700, 300, 240, 120, 640, 50, 860, 420, 980, 310,
              75, 600, 900, 64, 512, 128, 50, 1000, 96, 180, 720, 250, 105]


class CrossLayer(nn.Module):
    """x_{l+1} = x_0 * (W x_l + b) + x_l"""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, xl: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(xl) + xl


class DCNv2(nn.Module):
    def __init__(self, field_dims, num_dense, embed_dim=8, num_cross_layers=3, mlp_dims=(128, 64)):
        super().__init__()
        self.num_dense = num_dense
        self.embeddings = nn.ModuleList(nn.Embedding(n, embed_dim) for n in field_dims)
        for emb in self.embeddings:
            nn.init.xavier_uniform_(emb.weight)
        in_dim = num_dense + len(field_dims) * embed_dim
        self.cross_layers = nn.ModuleList(CrossLayer(in_dim) for _ in range(num_cross_layers))
        layers, prev = [], in_dim
        for d in mlp_dims:
            layers += [nn.Linear(prev, d), nn.LayerNorm(d), nn.ReLU()]
            prev = d
        layers.append(nn.Linear(prev, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        dense = X[:, :self.num_dense]
        sparse = [emb(X[:, self.num_dense + i].long()) for i, emb in enumerate(self.embeddings)]
        x0 = torch.cat([dense] + sparse, dim=1)
        x = x0
        for layer in self.cross_layers:
            x = layer(x0, x)
        return self.mlp(x)


def factory(batch_size: int = 8, seed: int = 0):
    """Returns ``(model, (X [B, 39] float32,))``; columns 13.. hold integral ids."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DCNv2(FIELD_DIMS, NUM_DENSE)
    g = torch.Generator().manual_seed(seed + 1)
    dense = torch.randn(batch_size, NUM_DENSE, generator=g)
    ids = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in FIELD_DIMS], dim=1)
    return model, (torch.cat([dense, ids.float()], dim=1),)
