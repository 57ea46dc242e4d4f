"""DeepFM over one float feature matrix (ids stored as floats, as in many CSV loaders).

Lookup styles: (b) ``nn.ModuleList`` of ``nn.Embedding``, ids sliced as ``X[:, i:i+1].long()``
giving ``[B, 1, D]`` per field; (c) a second ModuleList of dim-1 tables (first-order / wide
term) over the same ids, i.e. two lookups per feature.
Interaction: FM (square-of-sum minus sum-of-square) + deep MLP. Output: ``[B, 1]`` logits.
Inputs: ``(X: FloatTensor[B, 13 + 10],)`` -- 13 dense columns then 10 categorical columns.
fx-traceable.
"""
import torch
import torch.nn as nn

from ._data import gen, seeded

NUM_DENSE = 13
SPARSE_FEAT_SIZES = [100, 60, 250, 50, 999, 80, 120, 400, 55, 700]


class FM(nn.Module):
    """Factorization Machine part; input [B, F, K]."""

    def forward(self, inputs):
        fm_input = inputs
        square_of_sum = torch.pow(torch.sum(fm_input, dim=1, keepdim=True), 2)
        sum_of_square = torch.sum(fm_input * fm_input, dim=1, keepdim=True)
        cross_term = square_of_sum - sum_of_square
        cross_term = 0.5 * torch.sum(cross_term, dim=2, keepdim=False)
        return cross_term


class DNN(nn.Module):
    def __init__(self, inputs_dim, hidden_units):
        super().__init__()
        hidden_units = [inputs_dim] + list(hidden_units)
        self.linears = nn.ModuleList(
            [nn.Linear(hidden_units[i], hidden_units[i + 1]) for i in range(len(hidden_units) - 1)]
        )
        self.activation_layers = nn.ModuleList([nn.ReLU(inplace=True) for _ in range(len(hidden_units) - 1)])

    def forward(self, inputs):
        deep_input = inputs
        for i in range(len(self.linears)):
            deep_input = self.activation_layers[i](self.linears[i](deep_input))
        return deep_input


class DeepFM(nn.Module):
    def __init__(self, sparse_feat_sizes, num_dense, embedding_size=8, dnn_hidden_units=(64, 32), init_std=1e-2):
        super().__init__()
        self.num_dense = num_dense
        self.embedding_dict = nn.ModuleList([nn.Embedding(n, embedding_size) for n in sparse_feat_sizes])
        self.linear_embedding_dict = nn.ModuleList([nn.Embedding(n, 1) for n in sparse_feat_sizes])
        for tensor in list(self.embedding_dict) + list(self.linear_embedding_dict):
            nn.init.normal_(tensor.weight, mean=0, std=init_std)
        self.dense_weight = nn.Parameter(torch.randn(num_dense, 1) * init_std)
        self.fm = FM()
        self.dnn = DNN(num_dense + len(sparse_feat_sizes) * embedding_size, dnn_hidden_units)
        self.dnn_linear = nn.Linear(dnn_hidden_units[-1], 1, bias=False)
        self.bias = nn.Parameter(torch.zeros((1,)))

    def forward(self, X):
        start = self.num_dense
        sparse_embedding_list = [emb(X[:, start + i:start + i + 1].long()) for i, emb in enumerate(self.embedding_dict)]
        dense_value_list = [X[:, :self.num_dense]]

        sparse_linear = [emb(X[:, start + i:start + i + 1].long()) for i, emb in enumerate(self.linear_embedding_dict)]
        linear_logit = torch.sum(torch.cat(sparse_linear, dim=-1), dim=-1, keepdim=False)
        linear_logit = linear_logit + dense_value_list[0].matmul(self.dense_weight)

        fm_input = torch.cat(sparse_embedding_list, dim=1)
        logit = linear_logit + self.fm(fm_input)

        dnn_input = torch.cat([torch.flatten(torch.cat(sparse_embedding_list, dim=-1), start_dim=1)] + dense_value_list, dim=-1)
        dnn_logit = self.dnn_linear(self.dnn(dnn_input))
        return logit + dnn_logit + self.bias


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = DeepFM(SPARSE_FEAT_SIZES, NUM_DENSE)
    g = gen(seed)
    dense_cols = torch.rand(batch_size, NUM_DENSE, generator=g)
    sparse_cols = [torch.randint(0, n, (batch_size, 1), generator=g).float() for n in SPARSE_FEAT_SIZES]
    return model, (torch.cat([dense_cols] + sparse_cols, dim=1),)
