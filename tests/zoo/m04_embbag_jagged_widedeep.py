"""Wide & Deep over jagged multi-hot features with ``nn.EmbeddingBag`` (sum and mean).

Lookup style: (d) one ``nn.EmbeddingBag`` per feature in a ``ModuleDict``; each is fed a 1-D
``values`` tensor plus ``offsets`` (1..3 ids per bag). ``genres``/``tags``/``actors`` pool with
``mode="mean"``, the rest with ``mode="sum"``.
Interaction: plain concat + MLP (deep) plus a linear wide part over dense features.
Output: dict ``{"logit": [B, 1], "prob": [B, 1]}``.
Inputs: ``(dense: FloatTensor[B, 6], values: dict[str, LongTensor[N_f]],
offsets: dict[str, LongTensor[B]])``. fx-traceable.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._data import dense, gen, jagged, seeded

SUM_FEATURES = {"user_id": 700, "movie_id": 900, "zip": 300}
MEAN_FEATURES = {"genres": 50, "tags": 400, "actors": 600}


class WideAndDeep(nn.Module):
    def __init__(self, sum_features, mean_features, num_dense=6, dim=12, hidden=(64, 32)):
        super().__init__()
        self.bags = nn.ModuleDict()
        for name, n in sum_features.items():
            self.bags[name] = nn.EmbeddingBag(n, dim, mode="sum")
        for name, n in mean_features.items():
            self.bags[name] = nn.EmbeddingBag(n, dim, mode="mean")
        self.wide = nn.Linear(num_dense, 1)
        in_dim = dim * len(self.bags) + num_dense
        self.hidden = nn.ModuleList()
        for h in hidden:
            self.hidden.append(nn.Linear(in_dim, h))
            in_dim = h
        self.deep_out = nn.Linear(in_dim, 1)

    def forward(self, dense_x, values, offsets):
        pooled = [bag(values[name], offsets[name]) for name, bag in self.bags.items()]
        h = torch.cat(pooled + [dense_x], dim=1)
        for layer in self.hidden:
            h = F.relu(layer(h))
        logit = self.wide(dense_x) + self.deep_out(h)
        return {"logit": logit, "prob": torch.sigmoid(logit)}


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = WideAndDeep(SUM_FEATURES, MEAN_FEATURES)
    g = gen(seed)
    values, offsets = {}, {}
    for name, n in {**SUM_FEATURES, **MEAN_FEATURES}.items():
        values[name], offsets[name] = jagged(g, n, batch_size)
    return model, (dense(g, batch_size, 6), values, offsets)
