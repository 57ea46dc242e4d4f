"""A model mixing the constructs found by probing (for tests/capture/test_distributed_capture.py: 2x2 verify).

Fields 0-3: one concatenated table read at `(ids + offsets).view(-1)` and viewed back side by side
(`[B, 4*D]`); fields 4-6: a table each, read at a vocabulary remap buffer (`remap[x]`) with the
columns reordered by a constant index buffer (`index_select(1, cols)`); field 7: a numeric value
bucketized by constant boundaries. The head is a `torch.jit.script`-ed MLP; the output a dataclass
whose first field is the `[B, 1]` logit.
"""
import dataclasses

import torch
from torch import nn

VOCAB, DIM = 10, 4


@dataclasses.dataclass
class Scored:
    logit: torch.Tensor
    fields: torch.Tensor


class ProbedConstructs(nn.Module):
    def __init__(self):
        super().__init__()
        self.concat = nn.Embedding(4 * VOCAB, DIM)
        self.register_buffer("offsets", torch.arange(4) * VOCAB)
        self.tables = nn.ModuleList(nn.Embedding(VOCAB, DIM) for _ in range(3))
        self.register_buffer("remap", torch.randperm(VOCAB, generator=torch.Generator().manual_seed(5)))
        self.register_buffer("cols", torch.tensor([2, 0, 1]))
        self.register_buffer("bounds", torch.linspace(-1.5, 1.5, VOCAB - 1))
        self.bucket = nn.Embedding(VOCAB, DIM)
        head = nn.Sequential(nn.Linear(8 * DIM, 16), nn.ReLU(), nn.Linear(16, 1))
        self.head = torch.jit.script(head)

    def forward(self, ids: torch.Tensor, other: torch.Tensor, value: torch.Tensor) -> Scored:
        b = ids.size(0)
        side_by_side = self.concat((ids + self.offsets).view(-1)).view(b, -1)
        picked = self.remap[other].index_select(1, self.cols)
        rest = [t(picked[:, i]) for i, t in enumerate(self.tables)]
        bucket = self.bucket(torch.bucketize(value, self.bounds))
        fields = torch.cat([side_by_side, *rest, bucket], 1)
        return Scored(self.head(fields), fields)


def factory(batch_size: int = 8, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ProbedConstructs()
    g = torch.Generator().manual_seed(20_000 + seed)
    return model, (torch.randint(0, VOCAB, (batch_size, 4), generator=g),
                   torch.randint(0, VOCAB, (batch_size, 3), generator=g), torch.randn(batch_size, generator=g))
