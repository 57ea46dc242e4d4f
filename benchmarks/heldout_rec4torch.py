"""rec4torch's CTR models for the held-out capture measure (first run: benchmarks/results/heldout/).

rec4torch 0.0.2 (`pip install --no-deps rec4torch==0.0.2 torch4keras==0.1.9`; its import needs numpy,
pandas and torch4keras, the trainer its `BaseModel` subclasses) is DeepCTR-Torch's input convention
without the keras layer: every model takes ONE float tensor X `[B, n_columns]`, the columns of
`build_input_array` in `model.feature_index` order (sparse ids as floats, dense values, padded
sequences); its examples wrap that array as `torch.tensor(train_X, dtype=torch.float)` in a
`TensorDataset`, and `forward(X)` reads each feature as `X[:, start:end].long()` into
`self.embedding_dict` (an `nn.ModuleDict` of `nn.Embedding`), the linear part (`self.linear_model`)
with its own dim-1 tables.

The stand-in features: 4 `SparseFeat` (vocabularies 10..40, dim 8), one `VarLenSparseFeat` (`tags`,
maxlen 4, mean pooling over the non-zero ids, padded with 0) and 2 `DenseFeat`. Sizes: hidden units
(32, 16), attention units (16, 8).

Measured, every class in rec4torch.models with a `forward` (BaseModel, RecBase are the trainer and the
abstract base; `Linear` is the wide part every model holds):
DeepFM, WideDeep, DeepCrossing, DeepCross (its `vector` and `matrix` CrossNet), NeuralCF (two id
columns, user and item, as its docstring asks), DIN and DIEN (user, gender, item_id, cate_id, one dense
`pay_score` and the histories `hist_item_id`, `hist_cate_id` reading the item and category tables; DIEN
also `neg_hist_*`: its `InterestExtractor` returns an unbound `aux_loss` unless `use_negsampling`,
so it is built with negative sampling, in its `GRU` and `AUGRU` evolution). Histories hold 2 to 4
ids: DIEN's auxiliary loss drops the rows of length 1 from its states but reshapes them to the whole
batch, so a length-1 history fails eagerly. NeuralCF's DNN is sized for `embedding_dim` per id but
reads `dnn_emd_dim`-wide tables, so the two are set equal (8).
Two stand-ins for what Python 3.11 dropped: DeepCross's constructor calls `inspect.getargspec` (gone
since 3.11); the factory points it at `inspect.getfullargspec`, whose first field is the same list of
argument names. `VarLenSparseFeat(length_name=...)` is not used: its pooling reads `feat.combiner`,
an attribute rec4torch's `VarLenSparseFeat` does not have, so only the masked form runs.
"""
from __future__ import annotations

import inspect

import torch

VOCABS = (10, 20, 30, 40)
EMBED_DIM = 8
SEQ_LEN = 4
HIDDEN = (32, 16)


def _columns():
    from rec4torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    cols = [SparseFeat(f"C{i + 1}", v, embedding_dim=EMBED_DIM) for i, v in enumerate(VOCABS)]
    cols.append(VarLenSparseFeat(SparseFeat("tags", 12, embedding_dim=EMBED_DIM), maxlen=SEQ_LEN, pooling="mean"))
    return cols + [DenseFeat("I1", 1), DenseFeat("I2", 1)]


def _din_columns(neg: bool = False):
    from rec4torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    cols = [SparseFeat("user", 8, embedding_dim=EMBED_DIM), SparseFeat("gender", 2, embedding_dim=EMBED_DIM),
            SparseFeat("item_id", 30, embedding_dim=EMBED_DIM), SparseFeat("cate_id", 10, embedding_dim=EMBED_DIM),
            DenseFeat("pay_score", 1)]
    for prefix in ("hist_",) + (("neg_hist_",) if neg else ()):
        cols += [VarLenSparseFeat(SparseFeat(f"{prefix}item_id", 30, embedding_dim=EMBED_DIM, embedding_name="item_id"),
                                  maxlen=SEQ_LEN),
                 VarLenSparseFeat(SparseFeat(f"{prefix}cate_id", 10, embedding_dim=EMBED_DIM, embedding_name="cate_id"),
                                  maxlen=SEQ_LEN)]
    return cols


def _make_x(columns, feature_index, batch_size: int, seed: int) -> torch.Tensor:
    """X as build_input_array lays it out, as the float tensor the examples' TensorDataset holds."""
    from rec4torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    g = torch.Generator().manual_seed(1000 + seed)
    by_name = {fc.name: fc for fc in columns}
    lengths = torch.randint(2, SEQ_LEN + 1, (batch_size, 1), generator=g)  # one history length per row
    cols = []
    for name, (start, end) in feature_index.items():
        fc = by_name[name]
        if isinstance(fc, SparseFeat):
            cols.append(torch.randint(0, fc.vocabulary_size, (batch_size, 1), generator=g).float())
        elif isinstance(fc, DenseFeat):
            cols.append(torch.rand(batch_size, fc.dimension, generator=g))
        elif isinstance(fc, VarLenSparseFeat):
            seq = torch.randint(1, fc.vocabulary_size, (batch_size, fc.maxlen), generator=g)
            cols.append((seq * (torch.arange(fc.maxlen).unsqueeze(0) < lengths)).float())
        assert cols[-1].shape[1] == end - start, name
    return torch.cat(cols, dim=1)


def _factory(build, columns=_columns):
    def make(batch_size: int = 32, seed: int = 0):
        if not hasattr(inspect, "getargspec"):  # rec4torch.snippets.get_kw (DeepCross) calls it; gone in 3.11
            inspect.getargspec = inspect.getfullargspec
        torch.manual_seed(seed)
        cols = columns()
        model = build(cols)
        return model, (_make_x(cols, model.feature_index, batch_size, seed),)

    return make


def _ncf_columns():
    from rec4torch.inputs import SparseFeat

    return [SparseFeat("user", 20, embedding_dim=EMBED_DIM), SparseFeat("item", 30, embedding_dim=EMBED_DIM)]


def models() -> dict:
    import rec4torch.models as rm

    din_kw = dict(dnn_hidden_units=HIDDEN, att_hidden_units=(16, 8))
    return {
        "DeepFM": _factory(lambda c: rm.DeepFM(c, c, dnn_hidden_units=HIDDEN)),
        "WideDeep": _factory(lambda c: rm.WideDeep(c, c, dnn_hidden_units=HIDDEN)),
        "DeepCrossing": _factory(lambda c: rm.DeepCrossing(c, c, dnn_hidden_units=HIDDEN)),
        "DeepCross": _factory(lambda c: rm.DeepCross(c, c, dnn_hidden_units=HIDDEN)),
        "DeepCross-matrix": _factory(lambda c: rm.DeepCross(c, c, cross_parameterization="matrix",
                                                           dnn_hidden_units=HIDDEN)),
        "NeuralCF": _factory(lambda c: rm.NeuralCF(c, dnn_hidden_units=HIDDEN, dnn_emd_dim=EMBED_DIM), _ncf_columns),
        "DIN": _factory(lambda c: rm.DIN(c, ["item_id", "cate_id"], **din_kw), _din_columns),
        "DIEN": _factory(lambda c: rm.DIEN(c, ["item_id", "cate_id"], use_negsampling=True, **din_kw),
                         lambda: _din_columns(neg=True)),
        "DIEN-AUGRU": _factory(lambda c: rm.DIEN(c, ["item_id", "cate_id"], gru_type="AUGRU", use_negsampling=True,
                                                 **din_kw), lambda: _din_columns(neg=True)),
    }
