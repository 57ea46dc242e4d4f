"""DeepFM (Guo et al., 2017): first-order + FM + deep, sharing the second-order embeddings.

Every categorical field has TWO tables: a dim-1 "wide" table for the first-order term and a
dim-``k`` table whose rows feed both the FM and the deep network, so each feature is looked
up twice with the same ids. Dense features enter the first-order term through a linear
layer and the deep network directly. Output: ``[B, 1]`` logits.

MODEL_SPEC: ``examples/deepfm.py:factory``.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_DENSE = 8
FIELD_DIMS = [800, 350, 60, 1000, 120, 450, 75, 300, 90, 640, 50, 200]


class DeepFM(nn.Module):
    def __init__(self, field_dims, num_dense, embedding_size=10, hidden_dims=(64, 32)):
        super().__init__()
        self.field_size = len(field_dims)
        self.fm_first_order_embeddings = nn.ModuleList([nn.Embedding(n, 1) for n in field_dims])
        self.fm_second_order_embeddings = nn.ModuleList([nn.Embedding(n, embedding_size) for n in field_dims])
        self.dense_linear = nn.Linear(num_dense, 1)
        all_dims = [self.field_size * embedding_size + num_dense] + list(hidden_dims)
        self.deep_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(all_dims[:-1], all_dims[1:]))
        self.deep_out = nn.Linear(all_dims[-1], 1)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, dense_x: torch.Tensor, Xi: torch.Tensor) -> torch.Tensor:
        # first order
        fm_first_order = torch.cat(
            [emb(Xi[:, i]) for i, emb in enumerate(self.fm_first_order_embeddings)], dim=1)
        first_order = fm_first_order.sum(dim=1, keepdim=True) + self.dense_linear(dense_x)
        # second order
        fm_second_order_emb_arr = [emb(Xi[:, i]) for i, emb in enumerate(self.fm_second_order_embeddings)]
        fm_sum_second_order_emb = sum(fm_second_order_emb_arr)
        fm_sum_second_order_emb_square = fm_sum_second_order_emb * fm_sum_second_order_emb
        fm_second_order_emb_square = [item * item for item in fm_second_order_emb_arr]
        fm_second_order_emb_square_sum = sum(fm_second_order_emb_square)
        second_order = 0.5 * (fm_sum_second_order_emb_square - fm_second_order_emb_square_sum)
        second_order = second_order.sum(dim=1, keepdim=True)
        # deep
        deep_emb = torch.cat(fm_second_order_emb_arr + [dense_x], dim=1)
        for layer in self.deep_layers:
            deep_emb = F.relu(layer(deep_emb))
        return first_order + second_order + self.deep_out(deep_emb) + self.bias


def factory(batch_size: int = 8, seed: int = 0):
    """Returns ``(model, (dense_x [B, 8] float, Xi [B, 12] int64))``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DeepFM(FIELD_DIMS, NUM_DENSE)
    g = torch.Generator().manual_seed(seed + 1)
    dense_x = torch.rand(batch_size, NUM_DENSE, generator=g)
    Xi = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in FIELD_DIMS], dim=1)
    return model, (dense_x, Xi)
