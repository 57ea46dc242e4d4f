"""Factorization Machine with ONE shared embedding table for all fields.

Lookup style: (g) a single ``nn.Embedding(sum(field_dims), D)``; ids are made globally
unique by per-field offsets that arrive as an INPUT tensor (``x + offsets``), and one lookup
produces ``[B, F, D]``. A second big dim-1 table gives the linear term (2 lookups).
Interaction: FM (square-of-sum minus sum-of-square). Output: ``[B, 1]`` logits.
Inputs: ``(x: LongTensor[B, F] per-field local ids, offsets: LongTensor[F])``. fx-traceable.
"""
import torch

from ._data import gen, seeded

FIELD_DIMS = [120, 80, 300, 50, 64, 200, 90]


class FactorizationMachineModel(torch.nn.Module):
    def __init__(self, field_dims, embed_dim=8):
        super().__init__()
        total = sum(field_dims)
        self.embedding = torch.nn.Embedding(total, embed_dim)
        torch.nn.init.xavier_uniform_(self.embedding.weight.data)
        self.fc = torch.nn.Embedding(total, 1)
        self.bias = torch.nn.Parameter(torch.zeros((1,)))

    def forward(self, x, offsets):
        """
        :param x: Long tensor of size ``(batch_size, num_fields)``
        :param offsets: Long tensor of size ``(num_fields,)``, start row of each field
        """
        x = x + offsets.unsqueeze(0)
        linear = torch.sum(self.fc(x), dim=1) + self.bias
        emb = self.embedding(x)
        square_of_sum = torch.sum(emb, dim=1) ** 2
        sum_of_square = torch.sum(emb ** 2, dim=1)
        fm = 0.5 * torch.sum(square_of_sum - sum_of_square, dim=1, keepdim=True)
        return linear + fm


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = FactorizationMachineModel(FIELD_DIMS)
    g = gen(seed)
    x = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in FIELD_DIMS], dim=1)
    offsets = torch.tensor([0] + FIELD_DIMS[:-1]).cumsum(0)
    return model, (x, offsets)
