"""pytorch-tabnet 4.1.0 (dreamquark-ai) for the held-out capture measure: its `nn.Module` networks, built directly.

The sklearn-style wrappers (`TabNetClassifier.fit`) only build these networks and train them; the
measure builds the networks of `pytorch_tabnet.tab_network` as the wrappers do (`_set_network`):
one float matrix `[B, 5]` whose columns 0, 2 and 3 hold category codes (vocabularies 5, 11, 23,
`cat_idxs` / `cat_dims`) and columns 1 and 4 numeric values; `EmbeddingGenerator` embeds each
categorical column with its own `nn.Embedding` (`x[:, i].long()`) and concatenates the results with
the numeric columns. The group attention matrix is the wrappers' default (`torch.eye(5)`), or one
group of two categorical fields (`TabNet_grouped`).

Measured: `TabNet` at the wrappers' defaults (sparsemax masks, 3 steps, ghost batch norm of virtual
batch 128), with entmax masks, with ghost batches smaller than the batch (virtual batch 8: 4 ghost
batches at batch 32, 1 at batch 7), multi-task (two heads, a list output), with grouped features,
and `TabNetPretraining` (the self-supervised encoder-decoder; its random obfuscation runs in training
only). Left out: `TabNetNoEmbeddings`, the body that `TabNet` wraps behind `EmbeddingGenerator`: it
has no embedding table (it is measured inside every `TabNet`).

Installed with `pip install --no-deps` beside the pinned torch; `tab_network` imports only torch and
numpy.
"""
from __future__ import annotations

import torch

CAT_IDXS = [0, 2, 3]
CAT_DIMS = [5, 11, 23]
INPUT_DIM = 5


def inputs(batch_size: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(6000 + seed)
    x = torch.randn(batch_size, INPUT_DIM, generator=g)
    for i, n in zip(CAT_IDXS, CAT_DIMS):
        x[:, i] = torch.randint(0, n, (batch_size,), generator=g).float()
    return (x,)


def _grouped() -> torch.Tensor:
    m = torch.zeros(INPUT_DIM - 1, INPUT_DIM)  # columns 2 and 3 form one group
    for row, cols in enumerate([[0], [1], [2, 3], [4]]):
        m[row, cols] = 1.0 / len(cols)
    return m


def _tabnet(cls: str = "TabNet", **options):
    from pytorch_tabnet import tab_network as t

    kwargs = dict(input_dim=INPUT_DIM, n_d=8, n_a=8, n_steps=3, cat_idxs=CAT_IDXS, cat_dims=CAT_DIMS,
                  cat_emb_dim=[4, 4, 4], group_attention_matrix=torch.eye(INPUT_DIM))
    kwargs.update(options)
    if cls == "TabNetPretraining":
        return t.TabNetPretraining(**kwargs)
    return t.TabNet(output_dim=kwargs.pop("output_dim", 1), **kwargs)


def _factory(build):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        return build(), inputs(batch_size, seed)

    return make


def models() -> dict:
    return {
        "TabNet": _factory(lambda: _tabnet()),
        "TabNet_entmax": _factory(lambda: _tabnet(mask_type="entmax")),
        "TabNet_ghost_batches": _factory(lambda: _tabnet(virtual_batch_size=8)),
        "TabNet_multi_task": _factory(lambda: _tabnet(output_dim=[1, 3])),
        "TabNet_grouped": _factory(lambda: _tabnet(group_attention_matrix=_grouped())),
        "TabNetPretraining": _factory(lambda: _tabnet("TabNetPretraining")),
    }
