"""A model whose fields are picked along the column dim in other spellings, and whose tables are plain
parameters read at ids (for tests/capture/test_distributed_capture.py: 2x2 verify).

Fields 0-1: `nn.Embedding` fed by iterating the transposed id matrix (`for col in ids.T`); fields 2-3:
`narrow` and `chunk` pieces; field 4: a parameter table read as `W[ids]`, field 5 by
`W.index_select(0, ids)`; fields 6-7 of a second matrix: one parameter matrix read at `ids + offsets`.
Interaction: concatenation and a small MLP. Output `[B, 1]`.
"""
import torch
from torch import nn

FIELDS, VOCAB, DIM = 6, 12, 4


class ColumnSpellings(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.ModuleList(nn.Embedding(VOCAB, DIM) for _ in range(4))
        self.w4 = nn.Parameter(torch.randn(VOCAB, DIM) * 0.1)
        self.w5 = nn.Parameter(torch.randn(VOCAB, DIM) * 0.1)
        self.pair = nn.Parameter(torch.randn(2 * VOCAB, DIM) * 0.1)
        self.register_buffer("offsets", torch.tensor([0, VOCAB]))
        self.mlp = nn.Sequential(nn.Linear((FIELDS + 2) * DIM, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, ids: torch.Tensor, more: torch.Tensor) -> torch.Tensor:
        cols = [c for c in ids.T]
        e = [self.emb[0](cols[0]), self.emb[1](cols[1]),
             self.emb[2](ids.narrow(1, 2, 1).squeeze(1)),
             self.emb[3](torch.chunk(ids, FIELDS, dim=1)[3].squeeze(1)),
             self.w4[ids[:, 4]], self.w5.index_select(0, ids[:, 5])]
        e.append(self.pair[more + self.offsets].flatten(1))
        return self.mlp(torch.cat(e, 1))


def factory(batch_size: int = 8, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ColumnSpellings()
    g = torch.Generator().manual_seed(10_000 + seed)
    return model, (torch.randint(0, VOCAB, (batch_size, FIELDS), generator=g),
                   torch.randint(0, VOCAB, (batch_size, 2), generator=g))
