"""PyTorch Frame 0.3.0 (PyG's `pytorch-frame`, package `torch_frame`) for the held-out capture measure.

Every model takes one `TensorFrame`: an object (not a tensor, dict or tuple) whose `feat_dict` maps
each semantic type to a tensor, here `stype.categorical` -> `[B, 3]` category codes (vocabularies 5,
11, 23) and `stype.numerical` -> `[B, 2]`. The models are built from hand-written column statistics
(`col_stats`: category counts, mean / std / quantiles), as `Dataset.materialize()` would give them, and
the frame's `col_names_dict`. The default categorical encoder, `EmbeddingEncoder`, is one table for
all fields addressed as `codes + offset + 1` (row 0 for a missing value, `feat[codes < 0] = 0`).

Measured (each at small widths): `FTTransformer`, `MLP`, `ResNet`, `TabNet`, `TabTransformer` and
`Trompt` (its encoders impute missing values: `na_strategy` most-frequent / mean). Left out:
`ExcelFormer`, which takes numerical columns only (categorical ones are turned into numbers by a
transform before the model), so it has no embedding table.

Installed with `pip install --no-deps` beside the pinned torch, plus pandas (and python-dateutil, six,
tzdata) and tqdm, which `import torch_frame` needs; `torch_frame.config` imports PIL for its image
embedder only: where PIL is absent the measure stands in an empty module.
"""
from __future__ import annotations

import sys
import types

import torch

CARDINALITIES = [5, 11, 23]
N_NUM = 2


def _import():
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        pil, image = types.ModuleType("PIL"), types.ModuleType("PIL.Image")
        image.Image = object
        pil.Image = image
        sys.modules.update({"PIL": pil, "PIL.Image": image})
    import torch_frame

    return torch_frame


def _columns():
    tf = _import()
    return {tf.stype.categorical: [f"c{i}" for i in range(len(CARDINALITIES))],
            tf.stype.numerical: [f"n{i}" for i in range(N_NUM)]}


def _col_stats() -> dict:
    _import()
    from torch_frame.data.stats import StatType

    stats = {}
    for i, n in enumerate(CARDINALITIES):
        stats[f"c{i}"] = {StatType.COUNT: (list(range(n)), [n - k for k in range(n)])}
    for i in range(N_NUM):
        stats[f"n{i}"] = {StatType.MEAN: 0.1 * i, StatType.STD: 1.0 + i,
                          StatType.QUANTILES: [-2.0, -0.7, 0.0, 0.7, 2.0]}
    return stats


def inputs(batch_size: int, seed: int) -> tuple:
    tf = _import()
    g = torch.Generator().manual_seed(7000 + seed)
    cat = torch.stack([torch.randint(0, n, (batch_size,), generator=g) for n in CARDINALITIES], dim=1)
    num = torch.randn(batch_size, N_NUM, generator=g)
    return (tf.TensorFrame({tf.stype.categorical: cat, tf.stype.numerical: num}, _columns()),)


def _build(name: str):
    _import()
    from torch_frame.nn import models as m

    common = dict(out_channels=1, col_stats=_col_stats(), col_names_dict=_columns())
    if name == "TabTransformer":
        return m.TabTransformer(channels=16, num_layers=2, num_heads=2, encoder_pad_size=2, attn_dropout=0.1,
                                ffn_dropout=0.1, **common)
    if name == "TabNet":
        return m.TabNet(num_layers=3, split_feat_channels=8, split_attn_channels=8, gamma=1.2, **common)
    if name == "Trompt":
        return m.Trompt(channels=16, num_prompts=4, num_layers=2, **common)
    return getattr(m, name)(channels=16, num_layers=2, **common)


def _factory(name: str):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        return _build(name), inputs(batch_size, seed)

    return make


def models() -> dict:
    return {name: _factory(name) for name in ("FTTransformer", "MLP", "ResNet", "TabNet", "TabTransformer", "Trompt")}
