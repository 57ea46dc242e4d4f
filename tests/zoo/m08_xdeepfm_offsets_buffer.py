"""xDeepFM (pytorch-fm style) with per-field offsets in a registered buffer.

Lookup style: (g) ``FeaturesEmbedding``: one ``nn.Embedding(sum(field_dims), D)`` with
``x + self.offsets`` where ``offsets`` is a buffer; one lookup gives ``[B, F, D]``; plus
``FeaturesLinear`` (the same trick with a dim-1 table), i.e. 2 lookups of the same ids.
Interaction: small Compressed Interaction Network (CIN) + MLP + linear. Output: ``[B, 1]``.
Inputs: ``(x: LongTensor[B, F],)``. fx-traceable.
"""
import numpy as np
import torch
import torch.nn.functional as F

from ._data import gen, seeded

FIELD_DIMS = [50, 100, 250, 60, 400, 75]


class FeaturesEmbedding(torch.nn.Module):
    def __init__(self, field_dims, embed_dim):
        super().__init__()
        self.embedding = torch.nn.Embedding(sum(field_dims), embed_dim)
        self.register_buffer("offsets", torch.as_tensor(np.array((0, *np.cumsum(field_dims)[:-1]), dtype=np.int64)))
        torch.nn.init.xavier_uniform_(self.embedding.weight.data)

    def forward(self, x):
        x = x + self.offsets.unsqueeze(0)
        return self.embedding(x)


class FeaturesLinear(torch.nn.Module):
    def __init__(self, field_dims, output_dim=1):
        super().__init__()
        self.fc = torch.nn.Embedding(sum(field_dims), output_dim)
        self.bias = torch.nn.Parameter(torch.zeros((output_dim,)))
        self.register_buffer("offsets", torch.as_tensor(np.array((0, *np.cumsum(field_dims)[:-1]), dtype=np.int64)))

    def forward(self, x):
        x = x + self.offsets.unsqueeze(0)
        return torch.sum(self.fc(x), dim=1) + self.bias


class CompressedInteractionNetwork(torch.nn.Module):
    def __init__(self, input_dim, cross_layer_sizes):
        super().__init__()
        self.num_layers = len(cross_layer_sizes)
        self.conv_layers = torch.nn.ModuleList()
        prev_dim, fc_input_dim = input_dim, 0
        for cross_layer_size in cross_layer_sizes:
            self.conv_layers.append(torch.nn.Conv1d(input_dim * prev_dim, cross_layer_size, 1, stride=1, dilation=1, bias=True))
            prev_dim = cross_layer_size
            fc_input_dim += prev_dim
        self.fc = torch.nn.Linear(fc_input_dim, 1)

    def forward(self, x):
        xs = list()
        x0, h = x.unsqueeze(2), x
        for i in range(self.num_layers):
            x = x0 * h.unsqueeze(1)
            batch_size, f0_dim, fin_dim, embed_dim = x.shape
            x = x.view(batch_size, f0_dim * fin_dim, embed_dim)
            x = F.relu(self.conv_layers[i](x))
            h = x
            xs.append(x)
        return self.fc(torch.sum(torch.cat(xs, dim=1), 2))


class ExtremeDeepFactorizationMachineModel(torch.nn.Module):
    def __init__(self, field_dims, embed_dim=8, mlp_dims=(32, 16), cross_layer_sizes=(8, 8)):
        super().__init__()
        self.embedding = FeaturesEmbedding(field_dims, embed_dim)
        self.embed_output_dim = len(field_dims) * embed_dim
        self.cin = CompressedInteractionNetwork(len(field_dims), cross_layer_sizes)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(self.embed_output_dim, mlp_dims[0]), torch.nn.BatchNorm1d(mlp_dims[0]), torch.nn.ReLU(),
            torch.nn.Linear(mlp_dims[0], mlp_dims[1]), torch.nn.BatchNorm1d(mlp_dims[1]), torch.nn.ReLU(),
            torch.nn.Linear(mlp_dims[1], 1))
        self.linear = FeaturesLinear(field_dims)

    def forward(self, x):
        embed_x = self.embedding(x)
        x = self.linear(x) + self.cin(embed_x) + self.mlp(embed_x.view(-1, self.embed_output_dim))
        return x


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = ExtremeDeepFactorizationMachineModel(FIELD_DIMS)
    g = gen(seed)
    x = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in FIELD_DIMS], dim=1)
    return model, (x,)
