"""RePlay's sequential torch models for the held-out capture measure (first run: benchmarks/results/heldout/).

replay-rec 0.22.0 (Sber AI Lab): `pip install --no-deps replay-rec==0.22.0 lightning==2.6.1` beside the
pinned torch (`replay.nn` imports only when the `lightning` package is there; polars, pyarrow,
scikit-learn, scipy, tqdm, pandas are already in this venv).

Measured, the two model classes of `replay.nn.sequential`, each built by its own `from_params` (sum of
feature embeddings, RePlay's transformer layers) at small sizes (embedding_dim 16, 2 heads, 2 blocks,
max_sequence_length 6), from one `TensorSchema` of three sequential features: `item_id` (categorical,
30 items, padding value 30, the `ITEM_ID` hint), `category` (categorical, 6 values, padding 6) and
`price` (numerical, tensor_dim 1):

* `SasRec` in eval mode, `forward(feature_tensors, padding_mask)`, which returns `{"logits",
  "hidden_states"}` with logits against every item (`get_item_weights()` reads the item table whole);
  `SasRec-cand` with `candidates_to_score` (`[5]` item ids), which reads the item table at those ids;
* `TwoTower` (SasRec query tower, SwiGLU item tower over item features read by RePlay's
  `FeaturesReader` from a parquet catalog written to a temporary folder), the same two calls.

The batch is what RePlay's sequence batches hold: each feature `[B, 6]` left-padded with its padding
value (2 to 6 events a row), and `padding_mask` `[B, 6]` (True on events). The training forward
(`positive_labels`, ...) returns the loss, a scalar, and is not measured.
"""
from __future__ import annotations

import os
import tempfile

import torch

ITEMS, CATS, DIM, LEN = 30, 6, 16, 6
_CATALOG: list[str] = []


def _schema():
    from replay.data import FeatureHint, FeatureSource, FeatureType
    from replay.data.nn import TensorFeatureInfo, TensorFeatureSource, TensorSchema

    return TensorSchema([
        TensorFeatureInfo("item_id", is_seq=True, feature_type=FeatureType.CATEGORICAL, embedding_dim=DIM,
                          padding_value=ITEMS, cardinality=ITEMS, feature_hint=FeatureHint.ITEM_ID,
                          feature_sources=[TensorFeatureSource(FeatureSource.INTERACTIONS, "item_id")]),
        TensorFeatureInfo("category", is_seq=True, feature_type=FeatureType.CATEGORICAL, embedding_dim=DIM,
                          padding_value=CATS, cardinality=CATS,
                          feature_sources=[TensorFeatureSource(FeatureSource.ITEM_FEATURES, "category")]),
        TensorFeatureInfo("price", is_seq=True, feature_type=FeatureType.NUMERICAL, embedding_dim=DIM,
                          tensor_dim=1, feature_sources=[TensorFeatureSource(FeatureSource.ITEM_FEATURES, "price")]),
    ])


def _catalog() -> str:
    """Item features, encoded, as FeaturesReader reads them (one row per item)."""
    if not _CATALOG:
        import pandas as pd

        g = torch.Generator().manual_seed(5)
        path = os.path.join(tempfile.mkdtemp(prefix="replay_"), "items.parquet")
        pd.DataFrame({"item_id": list(range(ITEMS)),
                      "category": torch.randint(0, CATS, (ITEMS,), generator=g).tolist(),
                      "price": torch.rand(ITEMS, generator=g).tolist()}).to_parquet(path)
        _CATALOG.append(path)
    return _CATALOG[0]


def _batch(batch_size: int, seed: int, candidates: bool):
    g = torch.Generator().manual_seed(1000 + seed)
    lengths = torch.randint(2, LEN + 1, (batch_size, 1), generator=g)
    mask = torch.arange(LEN).unsqueeze(0) >= LEN - lengths
    items = torch.where(mask, torch.randint(0, ITEMS, (batch_size, LEN), generator=g), ITEMS)
    cats = torch.where(mask, torch.randint(0, CATS, (batch_size, LEN), generator=g), CATS)
    price = torch.rand(batch_size, LEN, generator=g) * mask
    features = {"item_id": items, "category": cats, "price": price}
    if not candidates:
        return features, mask
    return features, mask, torch.randint(0, ITEMS, (5,), generator=g)


def _factory(name: str, candidates: bool):
    def make(batch_size: int = 32, seed: int = 0):
        from replay.nn.sequential import SasRec

        torch.manual_seed(seed)
        kw = dict(embedding_dim=DIM, num_heads=2, num_blocks=2, max_sequence_length=LEN, dropout=0.1)
        if name == "SasRec":
            model = SasRec.from_params(_schema(), **kw)
        else:
            from replay.nn.sequential.twotower import FeaturesReader, TwoTower

            schema = _schema()
            reader = FeaturesReader(schema=schema, metadata={"item_id": {}, "category": {}, "price": {}},
                                    path=_catalog())
            model = TwoTower.from_params(schema, reader, **kw)
        model.eval()
        return model, _batch(batch_size, seed, candidates)

    return make


def models() -> dict:
    return {"SasRec": _factory("SasRec", False), "SasRec-cand": _factory("SasRec", True),
            "TwoTower": _factory("TwoTower", False), "TwoTower-cand": _factory("TwoTower", True)}
