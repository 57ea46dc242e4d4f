"""Field-aware Factorization Machine (FFM), pytorch-fm style.

Lookup styles: (h) field-aware: F tables, each ``nn.Embedding(sum(field_dims), D)``, and every
field is looked up in every table (``self.embeddings[j](x)`` for each j -> F lookups of
``[B, F, D]``); (g) ids made global by an ``offsets`` buffer; plus a dim-1 linear table.
Interaction: FFM pairwise ``xs[j][:, i] * xs[i][:, j]`` over all field pairs (Python loops
over ``range``, which trace fine). Output: ``[B, 1]`` logits.
Inputs: ``(x: LongTensor[B, F],)``. fx-traceable.
"""
import torch

from ._data import gen, seeded

FIELD_DIMS = [60, 100, 50, 200, 80]


class FieldAwareFactorizationMachine(torch.nn.Module):
    def __init__(self, field_dims, embed_dim):
        super().__init__()
        self.num_fields = len(field_dims)
        self.embeddings = torch.nn.ModuleList(
            [torch.nn.Embedding(sum(field_dims), embed_dim) for _ in range(self.num_fields)]
        )
        offsets = torch.tensor([0] + list(field_dims[:-1]), dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets)
        for embedding in self.embeddings:
            torch.nn.init.xavier_uniform_(embedding.weight.data)

    def forward(self, x):
        x = x + self.offsets.unsqueeze(0)
        xs = [self.embeddings[i](x) for i in range(self.num_fields)]
        ix = list()
        for i in range(self.num_fields - 1):
            for j in range(i + 1, self.num_fields):
                ix.append(xs[j][:, i] * xs[i][:, j])
        ix = torch.stack(ix, dim=1)
        return ix


class FieldAwareFactorizationMachineModel(torch.nn.Module):
    def __init__(self, field_dims, embed_dim=4):
        super().__init__()
        self.fc = torch.nn.Embedding(sum(field_dims), 1)
        self.bias = torch.nn.Parameter(torch.zeros((1,)))
        self.register_buffer("offsets", torch.tensor([0] + list(field_dims[:-1])).cumsum(0))
        self.ffm = FieldAwareFactorizationMachine(field_dims, embed_dim)

    def forward(self, x):
        linear = torch.sum(self.fc(x + self.offsets.unsqueeze(0)), dim=1) + self.bias
        ffm_term = torch.sum(torch.sum(self.ffm(x), dim=1), dim=1, keepdim=True)
        return linear + ffm_term


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = FieldAwareFactorizationMachineModel(FIELD_DIMS)
    g = gen(seed)
    x = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in FIELD_DIMS], dim=1)
    return model, (x,)
