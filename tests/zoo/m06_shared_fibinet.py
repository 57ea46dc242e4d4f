"""FiBiNET-ish model with tables shared between features.

Lookup styles: (a) ``nn.ModuleDict`` of ``nn.Embedding`` with dict input; (f) shared tables:
``user_id`` and ``target_user_id`` are both looked up in the ``"user"`` table, ``item_id`` and
``last_item_id`` in the ``"item"`` table (a ``feature -> table`` map).
Idiom (not fx-traceable): ``itertools.combinations(torch.unbind(emb, 1), 2)`` inside the
bilinear layer (iterating a Proxy).
Interaction: SENET field re-weighting + bilinear ("field-each") pairwise interaction + MLP.
Output: tuple ``(logits [B, 1], senet_weights [B, F])``.
Inputs: ``(batch: dict[str, LongTensor[B]],)`` with keys user_id, target_user_id, item_id,
last_item_id, gender, age_bucket.
"""
import itertools

import torch
from torch import nn

from ._data import gen, ids, seeded

TABLES = {"user": 800, "item": 1000, "gender": 50, "age": 60}
FEATURE_TO_TABLE = {
    "user_id": "user", "target_user_id": "user",
    "item_id": "item", "last_item_id": "item",
    "gender": "gender", "age_bucket": "age",
}


class SENETLayer(nn.Module):
    def __init__(self, num_fields, reduction_ratio=3):
        super().__init__()
        reduced = max(1, num_fields // reduction_ratio)
        self.excitation = nn.Sequential(nn.Linear(num_fields, reduced, bias=False), nn.ReLU(),
                                        nn.Linear(reduced, num_fields, bias=False), nn.ReLU())

    def forward(self, feature_emb):
        Z = torch.mean(feature_emb, dim=-1)
        A = self.excitation(Z)
        return feature_emb * A.unsqueeze(-1), A


class BilinearInteraction(nn.Module):
    def __init__(self, num_fields, embedding_dim):
        super().__init__()
        self.bilinear_W_list = nn.ModuleList(
            [nn.Linear(embedding_dim, embedding_dim, bias=False) for _ in range(num_fields)]
        )

    def forward(self, feature_emb):
        feature_emb_list = torch.unbind(feature_emb, dim=1)
        pairs = [self.bilinear_W_list[i](v_i) * v_j
                 for (i, v_i), (_, v_j) in itertools.combinations(enumerate(feature_emb_list), 2)]
        return torch.cat(pairs, dim=1)


class FiBiNET(nn.Module):
    def __init__(self, tables, feature_to_table, embedding_dim=10, hidden=(64, 16)):
        super().__init__()
        self.feature_to_table = dict(feature_to_table)
        self.embeddings = nn.ModuleDict({t: nn.Embedding(n, embedding_dim) for t, n in tables.items()})
        F = len(feature_to_table)
        self.senet = SENETLayer(F)
        self.bilinear = BilinearInteraction(F, embedding_dim)
        in_dim = F * (F - 1) * embedding_dim
        self.dnn = nn.Sequential(nn.Linear(in_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], 1))

    def forward(self, batch):
        embs = [self.embeddings[t](batch[f]) for f, t in self.feature_to_table.items()]
        feature_emb = torch.stack(embs, dim=1)
        senet_emb, weights = self.senet(feature_emb)
        bi_p = self.bilinear(feature_emb)
        bi_q = self.bilinear(senet_emb)
        return self.dnn(torch.cat([bi_p, bi_q], dim=-1)), weights


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = FiBiNET(TABLES, FEATURE_TO_TABLE)
    g = gen(seed)
    batch = {f: ids(g, TABLES[t], batch_size) for f, t in FEATURE_TO_TABLE.items()}
    return model, (batch,)
