"""Sequence model on a torchrec ``EmbeddingCollection`` (REQUIRES torchrec).

Lookup style: (e) ``EmbeddingCollection`` (unpooled: one embedding per id) over a
``KeyedJaggedTensor`` with 1..3 ids per sample for ``clicks`` and ``queries`` (a table shared by
the two features) and ``item``; the per-feature ``JaggedTensor`` s are mean-pooled by hand with
their offsets (``segment_reduce``-style via ``torch.ops`` free code: cumsum and index).
Interaction: concat + MLP. Output: ``[B, 1]``. Inputs: ``(kjt,)``. fx-traceable.
"""
import torch
from torch import nn

from ._data import gen, kjt, seeded

D = 8


def _mean_pool(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    owner = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
    sums = values.new_zeros((lengths.numel(), values.shape[1])).index_add(0, owner, values)
    return sums / lengths.clamp(min=1).unsqueeze(1).to(values.dtype)


class SeqModel(nn.Module):
    def __init__(self, ec):
        super().__init__()
        self.ec = ec
        self.mlp = nn.Sequential(nn.Linear(3 * D, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, features):
        seqs = self.ec(features)
        pooled = [_mean_pool(seqs[k].values(), seqs[k].lengths()) for k in ("clicks", "queries", "item")]
        return self.mlp(torch.cat(pooled, dim=1))


def factory(batch_size: int = 8, seed: int = 0):
    from torchrec.modules.embedding_configs import EmbeddingConfig
    from torchrec.modules.embedding_modules import EmbeddingCollection

    with seeded(seed):
        tables = [EmbeddingConfig(name="t_text", embedding_dim=D, num_embeddings=300, feature_names=["clicks", "queries"]),
                  EmbeddingConfig(name="t_item", embedding_dim=D, num_embeddings=500, feature_names=["item"])]
        model = SeqModel(EmbeddingCollection(tables=tables, device=torch.device("cpu")))
    g = gen(seed)
    return model, (kjt(g, ["clicks", "queries", "item"], [300, 300, 500], batch_size),)
