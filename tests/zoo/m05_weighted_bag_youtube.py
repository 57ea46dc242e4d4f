"""YouTube-DNN-style candidate model with a weighted watch history.

Lookup styles: (d) ``nn.EmbeddingBag(mode="sum")`` with ``per_sample_weights`` (watch-time
weights) over jagged history ids (``values`` + ``offsets``, 1..3 per bag); (f) the history
bag and the candidate ``video_id`` lookup share ONE table (``F.embedding_bag`` /
``F.embedding`` over ``self.video_table.weight``); plus two plain ``nn.Embedding`` features.
Interaction: plain concat + MLP tower. Output: ``[B, 1]`` logits.
Inputs: ``(hist_ids: LongTensor[N], hist_offsets: LongTensor[B], hist_weights:
FloatTensor[N], video_id: LongTensor[B], ctx: LongTensor[B, 2])`` (ctx columns: country,
os). fx-traceable.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._data import gen, ids, jagged, seeded

N_VIDEOS, N_COUNTRY, N_OS = 1000, 200, 50


class YoutubeDNN(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.video_table = nn.Embedding(N_VIDEOS, dim)
        self.country = nn.Embedding(N_COUNTRY, dim)
        self.os = nn.Embedding(N_OS, dim)
        self.tower = nn.Sequential(nn.Linear(4 * dim, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, hist_ids, hist_offsets, hist_weights, video_id, ctx):
        watched = F.embedding_bag(hist_ids, self.video_table.weight, hist_offsets,
                                  mode="sum", per_sample_weights=hist_weights)
        target = self.video_table(video_id)
        user = torch.cat([watched, self.country(ctx[:, 0]), self.os(ctx[:, 1]), target], dim=-1)
        return self.tower(user)


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = YoutubeDNN()
    g = gen(seed)
    hist, offsets = jagged(g, N_VIDEOS, batch_size)
    weights = torch.rand(hist.numel(), generator=g)
    ctx = torch.stack([ids(g, N_COUNTRY, batch_size), ids(g, N_OS, batch_size)], dim=1)
    return model, (hist, offsets, weights, ids(g, N_VIDEOS, batch_size), ctx)
