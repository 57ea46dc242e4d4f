"""DCN-v2 with a per-field normalisation loop over ``torch.split``.

Lookup style: (a) ``nn.ModuleDict`` of ``nn.Embedding``, dict input ``{name: LongTensor[B]}``.
Idiom (not fx-traceable): ``for chunk in torch.split(sparse, D, dim=1)`` in the root forward
(iterating a Proxy).
Interaction: DCN-v2 cross network (full-rank ``x0 * (W x + b) + x``) in parallel with a
deep MLP. Output: ``[B, 1]`` logits.
Inputs: ``(features: dict[str, LongTensor[B]], dense: FloatTensor[B, 4])``.
"""
import torch
from torch import nn

from ._data import dense, gen, ids, seeded

VOCAB = {"user_id": 500, "item_id": 900, "category": 60, "city": 150, "device": 50, "hour": 64}


class CrossNetV2(nn.Module):
    def __init__(self, input_dim, num_layers=3):
        super().__init__()
        self.num_layers = num_layers
        self.cross_layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))

    def forward(self, X_0):
        X_i = X_0
        for i in range(self.num_layers):
            X_i = X_i + X_0 * self.cross_layers[i](X_i)
        return X_i


class DCNv2(nn.Module):
    def __init__(self, vocab, num_dense=4, embedding_dim=8, hidden=(32, 16), num_cross_layers=2):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.feature_names = sorted(vocab)
        self.embedding_layer = nn.ModuleDict({f: nn.Embedding(v, embedding_dim) for f, v in vocab.items()})
        self.field_norm = nn.LayerNorm(embedding_dim)
        input_dim = len(vocab) * embedding_dim + num_dense
        self.crossnet = CrossNetV2(input_dim, num_cross_layers)
        dims = [input_dim, *hidden]
        self.parallel_dnn = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.fc = nn.Linear(input_dim + hidden[-1], 1)

    def forward(self, features, dense_x):
        sparse = torch.cat([self.embedding_layer[f](features[f]) for f in self.feature_names], dim=1)
        normed = []
        for chunk in torch.split(sparse, self.embedding_dim, dim=1):
            normed.append(self.field_norm(chunk))
        flat = torch.cat(normed + [dense_x], dim=1)
        cross_out = self.crossnet(flat)
        dnn_out = self.parallel_dnn(flat)
        return self.fc(torch.cat([cross_out, dnn_out], dim=-1))


def factory(batch_size: int = 8, seed: int = 0):
    with seeded(seed):
        model = DCNv2(VOCAB)
    g = gen(seed)
    features = {f: ids(g, v, batch_size) for f, v in VOCAB.items()}
    return model, (features, dense(g, batch_size, 4))
