"""tab-transformer-pytorch's models for the held-out capture measure (lucidrains, 0.6.1 on PyPI).

`TabTransformer` and `FTTransformer` take `(x_categ, x_cont)`: one `[B, n_cat]` matrix of category ids
and one `[B, n_cont]` matrix of numeric values. Both embed the categories through
`discrete_continuous_embed_readout.Embed`, one table for all fields addressed with per-field offsets
(a buffer of the cumulative vocabulary sizes), and run a transformer with hyper-connection residual
streams (`hyper_connections.mHC`). Each class is built as its README shows (TabTransformer with
`mlp_act=nn.ReLU()`) and once with the options that
change the graph: TabTransformer without the shared category embedding, one residual stream.

Installed with `pip install --no-deps` beside the pinned torch, plus the pure-Python packages its import
needs: einops, einx, frozendict, beartype, torch-einops-utils, x-mlps-pytorch, hyper-connections and
discrete-continuous-embed-readout.
"""
from __future__ import annotations

import torch

CATEGORIES = (5, 11, 23)
NUM_CONTINUOUS = 2

# name -> (class name, constructor options beyond the shared ones)
VARIANTS = {
    "TabTransformer": ("TabTransformer", {"mlp_act": "relu"}),
    "TabTransformer_noshared_1stream": ("TabTransformer", {"mlp_act": "relu", "use_shared_categ_embed": False,
                                                           "num_residual_streams": 1}),
    "FTTransformer": ("FTTransformer", {}),
    "FTTransformer_1stream": ("FTTransformer", {"num_residual_streams": 1}),
}


def inputs(batch_size: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(3000 + seed)
    x_categ = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in CATEGORIES], dim=1)
    return x_categ, torch.randn(batch_size, NUM_CONTINUOUS, generator=g)


def _factory(cls_name: str, options: dict):
    def make(batch_size: int = 32, seed: int = 0):
        import tab_transformer_pytorch as ttp

        torch.manual_seed(seed)
        kwargs = dict(options)
        if kwargs.get("mlp_act") == "relu":  # the README's choice; x-mlps-pytorch's MLP has no default
            kwargs["mlp_act"] = torch.nn.ReLU()
        model = getattr(ttp, cls_name)(categories=CATEGORIES, num_continuous=NUM_CONTINUOUS, dim=16, depth=2,
                                       heads=2, dim_head=8, dim_out=1, **kwargs)
        return model, inputs(batch_size, seed)

    return make


def models() -> dict:
    return {name: _factory(cls_name, options) for name, (cls_name, options) in VARIANTS.items()}
