"""DeepMatch-Torch's matching models for the held-out capture measure (first run: benchmarks/results/heldout/).

deepmatch-torch 0.0.6 (`pip install --no-deps deepmatch-torch==0.0.6`, package `deepmatch_torch`; it
builds on deepctr-torch's feature columns and layers and on pytorch-lightning's `LightningModule`)
feeds every model ONE tensor X `[B, n_columns]`: `PLBaseModel.construct_input` concatenates the
per-feature arrays in `model.feature_index` order (deepctr's `build_input_features`) and wraps them with
`torch.from_numpy`, so with id features only (its MovieLens examples: user, gender, age, ..., a padded
`hist_movie_id` and the item ids) X is int64; `forward` reads each feature as `X[:, start:end].long()`
into `self.embedding_dict` (an `nn.ModuleDict` keyed by `embedding_name`). The models run in their
default `mode` "train", which returns the score (the user/item representation modes return one tower).

The stand-in: users with `user_id` (20), `gender` (2), `age` (6) and a `hist_movie_id` history
(`VarLenSparseFeat`, maxlen 4, mean pooling over the non-zero ids, reading the `movie_id` table);
items with `movie_id` (30) and `genre` (8). All at embedding dim 8.

Measured, every model class deepmatch_torch.models exports:
DSSM (user and item DNN towers, cosine score), FM (first-order `Linear` part plus the FM of the user and
item embeddings), NCF (one user and one item id, as it requires: GMF and MLP tables), YouTubeDNN and MIND
(the item side is a `VarLenSparseFeat` `item_list` of 3 item ids -- the positive and the sampled ones,
as its sampled-softmax training builds them -- reading the `movie_id` table; scores `[B, 3]`; MIND's
capsule layer routes 20 times). YouTubeDNN's and MIND's user DNN ends at the embedding dim (8), which
their cosine score needs. Left out: `models/BaseModel.py` and `BaseModel2.py` (bases no model uses).
One stand-in for numpy 2: `deepmatch_torch.layers.core` imports `numpy.AxisError`, which numpy 2 moved
to `numpy.exceptions`; the factory puts it back under the old name before the import.
"""
from __future__ import annotations

import torch

EMBED_DIM = 8
SEQ_LEN = 4
ITEMS = 30
ITEM_LIST = 3


def _import():
    import numpy as np

    if not hasattr(np, "AxisError"):  # numpy 2 moved it; deepmatch_torch.layers.core imports the old name
        np.AxisError = np.exceptions.AxisError
    import deepmatch_torch.models as dm

    return dm


def _user_columns(history: bool = True):
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat

    cols = [SparseFeat("user_id", 20, embedding_dim=EMBED_DIM), SparseFeat("gender", 2, embedding_dim=EMBED_DIM),
            SparseFeat("age", 6, embedding_dim=EMBED_DIM)]
    if history:
        cols.append(VarLenSparseFeat(SparseFeat("hist_movie_id", ITEMS, embedding_dim=EMBED_DIM,
                                                embedding_name="movie_id"), maxlen=SEQ_LEN, combiner="mean"))
    return cols


def _item_columns():
    from deepctr_torch.inputs import SparseFeat

    return [SparseFeat("movie_id", ITEMS, embedding_dim=EMBED_DIM), SparseFeat("genre", 8, embedding_dim=EMBED_DIM)]


def _item_list_columns():
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat

    return [VarLenSparseFeat(SparseFeat("item_list", ITEMS, embedding_dim=EMBED_DIM, embedding_name="movie_id"),
                             maxlen=ITEM_LIST, combiner="mean")]


def _make_x(columns, feature_index, batch_size: int, seed: int) -> torch.Tensor:
    """X as construct_input builds it: the id columns concatenated, int64 (torch.from_numpy of int arrays)."""
    from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat

    g = torch.Generator().manual_seed(1000 + seed)
    by_name = {fc.name: fc for fc in columns}
    cols = []
    for name, (start, end) in feature_index.items():
        fc = by_name[name]
        if isinstance(fc, SparseFeat):
            cols.append(torch.randint(0, fc.vocabulary_size, (batch_size, 1), generator=g))
        elif isinstance(fc, VarLenSparseFeat) and fc.name.startswith("hist"):  # padded history, >= 1 id
            seq = torch.randint(1, fc.vocabulary_size, (batch_size, fc.maxlen), generator=g)
            lengths = torch.randint(1, fc.maxlen + 1, (batch_size, 1), generator=g)
            cols.append(seq * (torch.arange(fc.maxlen).unsqueeze(0) < lengths))
        elif isinstance(fc, VarLenSparseFeat):  # the positive item and the sampled ones: all present
            cols.append(torch.randint(1, fc.vocabulary_size, (batch_size, fc.maxlen), generator=g))
        assert cols[-1].shape[1] == end - start, name
    return torch.cat(cols, dim=1)


def _factory(build, user=_user_columns, item=_item_columns):
    def make(batch_size: int = 32, seed: int = 0):
        dm = _import()
        torch.manual_seed(seed)
        users, items = user(), item()
        model = build(dm, users, items)
        return model, (_make_x(users + items, model.feature_index, batch_size, seed),)

    return make


def _ncf_user():
    return _user_columns(history=False)[:1]


def models() -> dict:
    return {
        "DSSM": _factory(lambda dm, u, i: dm.DSSM(u, i, dnn_hidden_units=(32, 16))),
        "FM": _factory(lambda dm, u, i: dm.FM(u, i)),
        "NCF": _factory(lambda dm, u, i: dm.NCF(u, i, user_gmf_embedding_dim=EMBED_DIM, item_gmf_embedding_dim=EMBED_DIM,
                                                user_mlp_embedding_dim=EMBED_DIM, item_mlp_embedding_dim=EMBED_DIM,
                                                dnn_hidden_units=[32, 16]),
                        user=_ncf_user, item=lambda: _item_columns()[:1]),
        "YouTubeDNN": _factory(lambda dm, u, i: dm.YouTubeDNN(u, i, user_dnn_hidden_units=[32, EMBED_DIM]),
                               item=_item_list_columns),
        "MIND": _factory(lambda dm, u, i: dm.MIND(u, i, user_dnn_hidden_units=[32, EMBED_DIM]),
                         item=_item_list_columns),
    }
