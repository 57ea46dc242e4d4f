"""RecTools' transformer recommenders for the held-out capture measure (first run: benchmarks/results/heldout/).

rectools 0.19.0 (MTS): `pip install --no-deps rectools==0.19.0 pydantic pydantic-core==<its pin>
annotated-types typing-inspection "attrs<24" typeguard pm-implicit==0.7.3 fastrlock` beside the pinned
torch (its import needs pydantic, attrs, typeguard and `implicit`, which pm-implicit provides; its nn
models need pytorch-lightning, already in the venv).

Measured: the torch network each transformer model trains and scores with, `TransformerTorchBackbone`,
built by the model's own `_init_torch_model` from the model's defaults (so each model's positional
encoding, transformer layers, similarity module and attention masks are its own) at small sizes
(n_factors 16, 2 blocks, 2 heads, session_max_len 6): SASRec (causal, `SASRecTransformerLayers`),
BERT4Rec (bidirectional with key padding mask, `PreLNTransformerLayers`), HSTU (`STULayers` with
relative time and position attention, which reads `batch["unix_ts"]`), and SASRec with `LiGRLayers` (the
layers class RecTools ships for it). The item network is RecTools' default pair, `IdEmbeddingsItemNet`
summed with `CatFeaturesItemNet` (two categorical item features through one `nn.EmbeddingBag`) in
`SumOfEmbeddingsConstructor`; `-ids` rows use the id table alone. The backbone's forward is
`forward(batch, candidate_item_ids=None)`: the item net embeds the whole catalog
(`get_all_embeddings()`), sessions are gathered from it (`item_embs[batch["x"]]`), and the logits are
either against the whole catalog (`[B, L, n_items]`, recommending) or against `candidate_item_ids`
(`[B, L, 1 + n_negatives]`, the pos/neg ids of training: `-cand` rows).

The model classes' data pipeline (`Dataset.construct`, the data preparator) is not used: rectools 0.19
pins pandas < 3 and `IdMap.from_values` fails on pandas 3 (`pd.unique` of a tuple). The batch is what
the preparator yields, made directly: `x` sessions of item ids left-padded with 0 (the padding id), 2 to
6 items per row, and for HSTU `unix_ts` ([B, session_max_len + 1] increasing seconds, padded with 0).
`CatFeaturesItemNet` is built from its documented buffers: for each item the flat indices of its feature
values (`emb_bag_inputs`), their count (`input_lengths`) and start (`offsets`).
"""
from __future__ import annotations

import torch

N_ITEMS, N_FACTORS, MAX_LEN, N_NEG = 30, 16, 6, 3
GENRES, BRANDS = 5, 4


def _item_net(ids_only: bool):
    from rectools.models.nn.item_net import CatFeaturesItemNet, IdEmbeddingsItemNet, SumOfEmbeddingsConstructor

    blocks = [IdEmbeddingsItemNet(n_factors=N_FACTORS, n_items=N_ITEMS, dropout_rate=0.1)]
    if not ids_only:
        g = torch.Generator().manual_seed(11)
        genre = torch.randint(0, GENRES, (N_ITEMS,), generator=g)
        brand = GENRES + torch.randint(0, BRANDS, (N_ITEMS,), generator=g)
        inputs = torch.stack([genre, brand], dim=1)
        inputs[0] = torch.tensor([GENRES + BRANDS, GENRES + BRANDS])  # the padding item: one value of its own
        lengths = torch.full((N_ITEMS,), 2)
        blocks.append(CatFeaturesItemNet(emb_bag_inputs=inputs.reshape(-1), input_lengths=lengths,
                                         offsets=torch.arange(N_ITEMS) * 2, n_cat_feature_values=GENRES + BRANDS + 1,
                                         n_factors=N_FACTORS, dropout_rate=0.1))
    return SumOfEmbeddingsConstructor(N_ITEMS, blocks)


def _model(name: str):
    from rectools.models import BERT4RecModel, HSTUModel, SASRecModel

    kw = dict(n_factors=N_FACTORS, n_blocks=2, n_heads=2, session_max_len=MAX_LEN, dropout_rate=0.1)
    if name == "SASRec":
        return SASRecModel(**kw)
    if name == "BERT4Rec":
        return BERT4RecModel(**kw)
    if name == "HSTU":
        return HSTUModel(**kw)
    if name == "SASRec-LiGR":
        from rectools.models.nn.transformers.ligr import LiGRLayers

        return SASRecModel(transformer_layers_type=LiGRLayers, **kw)
    raise KeyError(name)


def _batch(name: str, batch_size: int, seed: int, candidates: bool):
    g = torch.Generator().manual_seed(1000 + seed)
    lengths = torch.randint(2, MAX_LEN + 1, (batch_size, 1), generator=g)
    pos = torch.arange(MAX_LEN).unsqueeze(0)
    keep = pos >= MAX_LEN - lengths  # left padding, as the preparator pads
    x = torch.randint(1, N_ITEMS, (batch_size, MAX_LEN), generator=g) * keep
    batch = {"x": x}
    if name == "HSTU":
        steps = torch.randint(60, 90_000, (batch_size, MAX_LEN + 1), generator=g).cumsum(dim=1) + 1_700_000_000
        batch["unix_ts"] = steps * torch.cat([keep, torch.ones(batch_size, 1, dtype=torch.bool)], dim=1)
    if not candidates:
        return (batch,)
    return batch, torch.randint(1, N_ITEMS, (batch_size, MAX_LEN, 1 + N_NEG), generator=g)


def _factory(name: str, ids_only: bool, candidates: bool):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        model = _model(name)
        backbone = model._init_torch_model(_item_net(ids_only))
        return backbone, _batch(name, batch_size, seed, candidates)

    return make


def models() -> dict:
    out = {}
    for name in ("SASRec", "BERT4Rec", "HSTU", "SASRec-LiGR"):
        for ids_only in (False, True):
            for candidates in (False, True):
                key = name + ("-ids" if ids_only else "") + ("-cand" if candidates else "")
                out[key] = _factory(name, ids_only, candidates)
    return out
