"""Wide & Deep that also accepts a single un-batched example.

Lookup styles: (b)-like ``nn.ModuleList`` of ``nn.Embedding`` over columns of one
``LongTensor[B, F]`` (``x[:, i]`` -> ``[B, D]``); (c) wide part: dim-1 tables over the same
ids (2 lookups per feature) plus a hashed cross-product feature ``(x0 * |V1| + x1) % H`` in
its own dim-1 table.
Idiom (not fx-traceable): ``if x.dim() > 1:`` on the input in the root forward.
Interaction: plain concat + MLP (deep) + sum of wide weights. Output: ``[B, 1]`` logits.
Inputs: ``(x: LongTensor[B, F],)``.
"""
import torch
from torch import nn

from ._data import gen, seeded

VOCABS = [300, 200, 50, 120, 80]
CROSS_BUCKETS = 997


class WideDeep(nn.Module):
    def __init__(self, vocabs, dim=8, hidden=(32, 16)):
        super().__init__()
        self.vocabs = list(vocabs)
        self.deep_emb = nn.ModuleList([nn.Embedding(v, dim) for v in vocabs])
        self.wide_emb = nn.ModuleList([nn.Embedding(v, 1) for v in vocabs])
        self.cross_emb = nn.Embedding(CROSS_BUCKETS, 1)
        layers, d_in = [], dim * len(vocabs)
        for h in hidden:
            layers += [nn.Linear(d_in, h), nn.ReLU()]
            d_in = h
        layers.append(nn.Linear(d_in, 1))
        self.deep = nn.Sequential(*layers)
        self.wide_bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        if x.dim() > 1:
            batch = x
        else:
            batch = x.unsqueeze(0)
        deep_in = torch.cat([emb(batch[:, i]) for i, emb in enumerate(self.deep_emb)], dim=1)
        crossed = (batch[:, 0] * self.vocabs[1] + batch[:, 1]) % CROSS_BUCKETS
        wide = sum(emb(batch[:, i]) for i, emb in enumerate(self.wide_emb)) + self.cross_emb(crossed)
        return self.deep(deep_in) + wide + self.wide_bias


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = WideDeep(VOCABS)
    g = gen(seed)
    x = torch.stack([torch.randint(0, v, (batch_size,), generator=g) for v in VOCABS], dim=1)
    return model, (x,)
