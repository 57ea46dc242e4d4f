"""Spotlight's networks for the held-out capture measure (first run: benchmarks/results/heldout/).

Spotlight (maciejkula/spotlight) has no wheel for current Python on the registry (the `spotlight` name
there is another project): `SPOTLIGHT_SRC` names the folder that holds the `spotlight` package of a
checkout, measured at commit 75f4c8c55090771b52b88ef1a00f75bb39f9f2a9:

    git clone https://github.com/maciejkula/spotlight DIR && git -C DIR checkout 75f4c8c5
    # then SPOTLIGHT_SRC=DIR (its imports need numpy, scikit-learn and torch, already in this venv)

Measured, every network class of `spotlight.factorization.representations` and
`spotlight.sequence.representations`, each with its default embedding layers and once with the
`BloomEmbedding` layer Spotlight ships for compressed tables (murmur-hashed ids, 4 hash functions,
compression 0.2: `-bloom`; for BilinearNet also its `bag=True` form, `-bloombag`), at embedding_dim 16:

* `BilinearNet(num_users, num_items)` called as the factorization models call it, `net(user_ids,
  item_ids)` with ids `[B]`;
* `PoolNet`, `LSTMNet`, `CNNNet` (2 layers, kernel 3), `MixtureLSTMNet` called as
  `ImplicitSequenceModel.fit` calls them: `user_representation, _ = net.user_representation(sequences)`,
  then `net(user_representation, sequences)` for the positive and `net(user_representation, negatives)`
  for the negative predictions; the measured module (`_SequenceStep`, below) returns both, stacked on a
  last dim. Sequences are `[B, 5]` item ids left-padded with 0 (Spotlight's `PADDING_IDX`), 2 to 5 items
  a row; negatives are random item ids of the same shape, as `_get_negative_prediction` samples them.
"""
from __future__ import annotations


import torch
from torch import nn

from heldout_sources import checkout_on_path

USERS, ITEMS, DIM, SEQ = 20, 40, 16, 5


def _src() -> None:
    checkout_on_path("SPOTLIGHT_SRC", "spotlight", "the folder holding the spotlight package of a checkout "
                     "(see heldout_spotlight.py's docstring)")


class _SequenceStep(nn.Module):
    """One training step's predictions of `ImplicitSequenceModel.fit`: positives and negatives."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, sequences, negatives):
        user_representation, _ = self.net.user_representation(sequences)
        positive = self.net(user_representation, sequences)
        negative = self.net(user_representation, negatives)
        return torch.stack([positive, negative], dim=-1)


def _bloom(rows: int, bag: bool = False):
    from spotlight.layers import BloomEmbedding

    return BloomEmbedding(rows, DIM, compression_ratio=0.2, num_hash_functions=4, bag=bag)


def _bilinear(bloom: str):
    def make(batch_size: int = 32, seed: int = 0):
        _src()
        from spotlight.factorization.representations import BilinearNet

        torch.manual_seed(seed)
        kw = {}
        if bloom:
            kw = dict(user_embedding_layer=_bloom(USERS, bloom == "bag"), item_embedding_layer=_bloom(ITEMS, bloom == "bag"))
        net = BilinearNet(USERS, ITEMS, embedding_dim=DIM, **kw)
        g = torch.Generator().manual_seed(1000 + seed)
        return net, (torch.randint(0, USERS, (batch_size,), generator=g),
                     torch.randint(0, ITEMS, (batch_size,), generator=g))

    return make


def _sequence(name: str, bloom: bool):
    def make(batch_size: int = 32, seed: int = 0):
        _src()
        import spotlight.sequence.representations as rep

        torch.manual_seed(seed)
        kw = dict(item_embedding_layer=_bloom(ITEMS)) if bloom else {}
        if name == "CNNNet":
            kw.update(kernel_width=3, num_layers=2, benchmark=False)
        net = getattr(rep, name)(ITEMS, embedding_dim=DIM, **kw)
        g = torch.Generator().manual_seed(1000 + seed)
        lengths = torch.randint(2, SEQ + 1, (batch_size, 1), generator=g)
        keep = torch.arange(SEQ).unsqueeze(0) >= SEQ - lengths
        seq = torch.randint(1, ITEMS, (batch_size, SEQ), generator=g) * keep
        return _SequenceStep(net), (seq, torch.randint(1, ITEMS, (batch_size, SEQ), generator=g))

    return make


def models() -> dict:
    out = {"BilinearNet": _bilinear(""), "BilinearNet-bloom": _bilinear("plain"),
           "BilinearNet-bloombag": _bilinear("bag")}
    for name in ("PoolNet", "LSTMNet", "CNNNet", "MixtureLSTMNet"):
        out[name] = _sequence(name, False)
        out[name + "-bloom"] = _sequence(name, True)
    return out
