"""Yandex's rtdl packages for the held-out capture measure: `rtdl_revisiting_models` 0.0.2 and `rtdl` 0.0.13.

Both implement "Revisiting Deep Learning Models for Tabular Data" (Gorishniy et al., NeurIPS 2021):

* `rtdl_revisiting_models`: `FTTransformer(x_cont, x_cat)` with `CategoricalEmbeddings` (one
  `nn.Embedding` per field in a `ModuleList`, a per-field bias); `MLP` and `ResNet` take one flat
  matrix, so, as in the paper, they read the categorical fields through `CategoricalEmbeddings`,
  flattened and concatenated with the numeric features (`_EmbeddingsThen` below);
* `rtdl` (the earlier package): `FTTransformer(x_num, x_cat)` with `CategoricalFeatureTokenizer` (one
  table for all fields, addressed as `x + category_offsets[None]`, a buffer of cumulative vocabulary
  sizes), in its default and baseline forms and with key/value compression (Linformer-style), and
  `MLP` / `ResNet` behind `CategoricalFeatureTokenizer` the same way.

Installed with `pip install --no-deps` beside the pinned torch (rtdl 0.0.13 declares torch<2 but runs
on torch 2 for these modules).
"""
from __future__ import annotations

import torch
from torch import nn

CARDINALITIES = [5, 11, 23]
N_CONT = 2
D_EMB = 8


class _EmbeddingsThen(nn.Module):
    """The paper's MLP / ResNet on categorical data: embed each field, flatten, append the numeric features."""

    def __init__(self, embeddings: nn.Module, head: nn.Module, n_cont: int):
        super().__init__()
        self.embeddings, self.head, self.n_cont = embeddings, head, n_cont

    def forward(self, x_cont, x_cat):
        x = self.embeddings(x_cat).flatten(1)
        if self.n_cont:
            x = torch.cat([x_cont, x], dim=1)
        return self.head(x)


def inputs(batch_size: int, seed: int, n_cont: int = N_CONT) -> tuple:
    g = torch.Generator().manual_seed(4000 + seed)
    x_cat = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in CARDINALITIES], dim=1)
    x_cont = torch.randn(batch_size, n_cont, generator=g) if n_cont else None
    return x_cont, x_cat


def _factory(build, n_cont: int = N_CONT):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        return build(), inputs(batch_size, seed, n_cont)

    return make


# ----------------------------------------------------------------------------------------------------------
# rtdl_revisiting_models
# ----------------------------------------------------------------------------------------------------------
def _revisiting_ft(n_cont: int, **options):
    import rtdl_revisiting_models as r

    kwargs = {**r.FTTransformer.get_default_kwargs(n_blocks=2), "d_block": 16, "ffn_d_hidden_multiplier": 2.0,
              **options}
    return r.FTTransformer(n_cont_features=n_cont, cat_cardinalities=CARDINALITIES, d_out=1, **kwargs)


def _revisiting_head(kind: str):
    import rtdl_revisiting_models as r

    d_in = N_CONT + D_EMB * len(CARDINALITIES)
    head = (r.MLP(d_in=d_in, d_out=1, n_blocks=2, d_block=32, dropout=0.1) if kind == "MLP" else
            r.ResNet(d_in=d_in, d_out=1, n_blocks=2, d_block=32, d_hidden=None, d_hidden_multiplier=2.0,
                     dropout1=0.1, dropout2=0.0))
    return _EmbeddingsThen(r.CategoricalEmbeddings(CARDINALITIES, D_EMB), head, N_CONT)


def revisiting_models() -> dict:
    return {
        "FTTransformer": _factory(lambda: _revisiting_ft(N_CONT)),
        "FTTransformer_cat_only": _factory(lambda: _revisiting_ft(0), n_cont=0),
        "FTTransformer_linformer": _factory(lambda: _revisiting_ft(
            N_CONT, linformer_kv_compression_ratio=0.5, linformer_kv_compression_sharing="headwise")),
        "MLP_CategoricalEmbeddings": _factory(lambda: _revisiting_head("MLP")),
        "ResNet_CategoricalEmbeddings": _factory(lambda: _revisiting_head("ResNet")),
    }


# ----------------------------------------------------------------------------------------------------------
# rtdl
# ----------------------------------------------------------------------------------------------------------
def _rtdl_head(kind: str):
    import rtdl

    d_in = N_CONT + D_EMB * len(CARDINALITIES)
    head = (rtdl.MLP.make_baseline(d_in=d_in, d_layers=[32, 32], dropout=0.1, d_out=1) if kind == "MLP" else
            rtdl.ResNet.make_baseline(d_in=d_in, n_blocks=2, d_main=32, d_hidden=64, dropout_first=0.1,
                                      dropout_second=0.0, d_out=1))
    return _EmbeddingsThen(rtdl.CategoricalFeatureTokenizer(CARDINALITIES, D_EMB, True, "uniform"), head, N_CONT)


def _rtdl_ft(kind: str, n_cont: int = N_CONT, **options):
    import rtdl

    if kind == "default":
        return rtdl.FTTransformer.make_default(n_num_features=n_cont, cat_cardinalities=CARDINALITIES, n_blocks=1,
                                               d_out=1, **options)
    return rtdl.FTTransformer.make_baseline(n_num_features=n_cont, cat_cardinalities=CARDINALITIES, d_token=16,
                                            n_blocks=2, attention_dropout=0.1, ffn_d_hidden=32, ffn_dropout=0.1,
                                            residual_dropout=0.0, d_out=1, **options)


def rtdl_models() -> dict:
    return {
        "FTTransformer_default": _factory(lambda: _rtdl_ft("default")),
        "FTTransformer_baseline": _factory(lambda: _rtdl_ft("baseline")),
        "FTTransformer_cat_only": _factory(lambda: _rtdl_ft("baseline", n_cont=0), n_cont=0),
        "FTTransformer_kv_compression": _factory(lambda: _rtdl_ft(
            "baseline", kv_compression_ratio=0.5, kv_compression_sharing="key-value")),
        "MLP_CategoricalFeatureTokenizer": _factory(lambda: _rtdl_head("MLP")),
        "ResNet_CategoricalFeatureTokenizer": _factory(lambda: _rtdl_head("ResNet")),
    }
