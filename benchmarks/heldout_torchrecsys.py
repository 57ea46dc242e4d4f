"""torchrecsys' models for the held-out capture measure, built from a small stand-in data schema.

torchrecsys 0.1.0 (Jaime Ferrando Huertas; https://github.com/jaimeferj/torchrecsys) ships as an sdist
whose setup.py reads a requirements.txt it does not include: it is installed from the unpacked sdist
with an empty requirements.txt (`pip install --no-deps --no-build-isolation .`). Its models are
`pytorch_lightning.LightningModule`s (pytorch_lightning, lightning_utilities and torchmetrics installed
with `--no-deps`).

Every model takes a `data_schema` dict as the library's `InteractionsDataset.data_schema` /
`Seq2SeqDataset.data_schema` builds it: `torchrecsys.datasets.utils.feature`s (name, dtype, unique
count) for the user and item side features -- dtype "category" gives an embedding of
`feature_embedding_size`, "int64" passes the value through as a numeric column. The stand-in: 20 users,
30 items, user features (age bucket, 6 values; country, 9 values; a numeric `visits`), item features
(brand, 8 values; category, 5 values). NCF and ALS are called as in `training_step`:
`(interactions [B, 3] long: user id, item id, rating, context, users [B, 3], items [B, 2])`; context
is unused by both (an empty `[B, 0]` tensor). Bert4Rec is called on `(sequence [B, L] item ids, 0-padded
on the left as `Seq2SeqDataset` pads, items [B, L, 2] side features of each position)`, L = 6.
Small sizes: embedding_size 16, feature_embedding_size 4, NCF's mlp_layers [32, 16], Bert4Rec with
hidden_units 32, 2 heads, 1 layer. All three model classes are measured.
"""
from __future__ import annotations

import torch

USERS, ITEMS, SEQ_LEN = 20, 30, 6
_USER = (("age", "category", 6), ("country", "category", 9), ("visits", "int64", 10))
_ITEM = (("brand", "category", 8), ("category", "category", 5))


def _features(spec):
    from torchrecsys.datasets.utils import feature

    return [feature(name=n, dtype=t, unique_value_count=k) for n, t, k in spec]


def _columns(spec, shape, g: torch.Generator) -> torch.Tensor:
    return torch.stack([torch.randint(0, k, shape, generator=g) for _, _, k in spec], dim=-1)


def _pair_factory(cls_name: str, **kwargs):
    def make(batch_size: int = 32, seed: int = 0):
        import torchrecsys.models as tm

        torch.manual_seed(seed)
        schema = {"interactions": (USERS, ITEMS), "user_features": _features(_USER),
                  "item_features": _features(_ITEM), "objetive": "binary"}
        model = getattr(tm, cls_name)(schema, embedding_size=16, feature_embedding_size=4, **kwargs)
        g = torch.Generator().manual_seed(1000 + seed)
        interactions = torch.stack([torch.randint(0, USERS, (batch_size,), generator=g),
                                    torch.randint(0, ITEMS, (batch_size,), generator=g),
                                    torch.randint(0, 2, (batch_size,), generator=g)], dim=1)
        context = torch.zeros(batch_size, 0)
        return model, (interactions, context, _columns(_USER, (batch_size,), g),
                       _columns(_ITEM, (batch_size,), g))

    return make


def _bert4rec(batch_size: int = 32, seed: int = 0):
    import torchrecsys.models as tm

    torch.manual_seed(seed)
    schema = {"n_items": ITEMS, "max_length": SEQ_LEN, "item_features": _features(_ITEM)}
    model = tm.Bert4Rec(schema, n_layers=1, heads=2, hidden_units=32, feature_embedding_size=4)
    g = torch.Generator().manual_seed(1000 + seed)
    seq = torch.randint(1, ITEMS + 1, (batch_size, SEQ_LEN), generator=g)
    lengths = torch.randint(1, SEQ_LEN + 1, (batch_size, 1), generator=g)
    seq = seq * (torch.arange(SEQ_LEN).flip(0).unsqueeze(0) < lengths)  # left padding with 0
    return model, (seq, _columns(_ITEM, (batch_size, SEQ_LEN), g))


def models() -> dict:
    return {"NCF": _pair_factory("NCF", mlp_layers=[32, 16]), "ALS": _pair_factory("ALS"),
            "Bert4Rec": _bert4rec}
