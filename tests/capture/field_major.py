"""A model whose inputs carry the batch on dim 1 (for tests/capture/test_distributed_capture.py: 2x2 verify).

`fields`: a field-major `[F, B]` id matrix, field i read as `fields[i]`; `seq`: a time-major `[L, B]`
sequence (the RNN convention `batch_first=False`) looked up to `[L, B, D]` and mean-pooled over dim 0;
`ids`: a batch-major `[B, 2]` matrix read through `ids.permute(1, 0)[i]`. Output `[B, 1]`.
"""
import torch
from torch import nn

FIELDS, LENGTH, VOCAB, DIM = 3, 5, 12, 4


class FieldMajor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fields = nn.ModuleList(nn.Embedding(VOCAB, DIM) for _ in range(FIELDS))
        self.seq = nn.Embedding(VOCAB, DIM)
        self.pair = nn.ModuleList(nn.Embedding(VOCAB, DIM) for _ in range(2))
        self.mlp = nn.Sequential(nn.Linear((FIELDS + 3) * DIM, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, fields: torch.Tensor, seq: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        e = [emb(fields[i]) for i, emb in enumerate(self.fields)]
        e.append(self.seq(seq).mean(0))
        e += [emb(ids.permute(1, 0)[i]) for i, emb in enumerate(self.pair)]
        return self.mlp(torch.cat(e, 1))


def inputs(batch_size: int, seed: int):
    g = torch.Generator().manual_seed(10_000 + seed)
    return (torch.randint(0, VOCAB, (FIELDS, batch_size), generator=g),
            torch.randint(0, VOCAB, (LENGTH, batch_size), generator=g),
            torch.randint(0, VOCAB, (batch_size, 2), generator=g))


def factory(batch_size: int = 8, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FieldMajor()
    return model, inputs(batch_size, seed)
