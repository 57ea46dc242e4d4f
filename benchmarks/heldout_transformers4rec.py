"""NVIDIA Transformers4Rec (its PyTorch API, `transformers4rec.torch`) for the held-out capture measure.

Install: `pip install --no-deps transformers4rec==23.12.0` and, each `--no-deps`, the pure-Python deps
its import needs: merlin-core 23.8.0, merlin-dataloader 23.8.0, merlin-models 23.12.0, betterproto
1.2.5 (with grpclib, stringcase, h2, hpack, hyperframe, multidict) and numba/llvmlite (merlin.core.compat
imports `numba.cuda` unguarded; it answers "no GPU" on CPU). merlin-core's import also reaches
`dask.dataframe` and `distributed` (merlin.core.dispatch, merlin.io, through the dataloader that
`transformers4rec.torch` imports): dask/distributed 2024.12.1 (numpy-2 ready and still holding the legacy
`dask.dataframe.core` merlin.io imports, with `DASK_DATAFRAME__QUERY_PLANNING=False`; 2023.7 fails on
numpy 2's removed `np.unicode_`), toolz, partd, locket, tornado, msgpack,
psutil, tblib, zict, click and importlib_metadata 6.8 are installed `--target` a side folder
(`T4R_DEPS`, default /tmp/t4r_deps) appended to sys.path here, so the shared venv keeps no dask. No
GPU, cudf or dask-cuda is needed: merlin falls back to pandas/numpy when they are absent. betterproto
1.2.5's messages cannot be deep-copied on Python 3.11 (see the `copyreg` line below).

Models are built as the library's README and examples build them: a merlin `Schema` (here written in
code: `item_id-list` [ITEM_ID, CATEGORICAL, LIST] vocab 50, `category-list` vocab 10, `weekday-list`
vocab 7 -- sequence categoricals, each `value_count` 1..8 --, `price-list` a continuous sequence, and
the context features `user_country` (categorical, vocab 6) and `user_age` (continuous)), then

* next-item prediction (9): `TabularSequenceFeatures.from_schema(schema, max_sequence_length=8,
  continuous_projection=16, aggregation="concat", masking=M)`, `SequentialBlock(inputs, MLPBlock([16]),
  TransformerBlock(<Config>.build(16, 2, 2, total_seq_length=8), masking=inputs.masking))`,
  `Head(body, NextItemPredictionTask(weight_tying=True), inputs=inputs)`, `Model(head)`, with the
  configs of `transformers4rec.config.transformer` (`tr` re-exports only some): XLNet (masking "mlm"
  and "causal"), GPT2 ("causal"), BERT, ALBERT, ELECTRA, RoBERTa ("mlm"), Longformer ("causal") and
  Transformer-XL ("causal": not runnable, its Hugging Face module -- deprecated in transformers 4.46 --
  calls `Tensor.type_as` without an argument under torch 2.13). 23.12 has no LLaMA config; Reformer is
  left out (its LSH attention draws random rotations on every call: random in eval);
* session classification / regression (3): the same sequence inputs (no masking) with
  `MLPBlock([32, 16])` and `BinaryClassificationTask("click", summary_type="first")` /
  `RegressionTask("click", summary_type="first")`, and an XLNet body ("causal") under
  `BinaryClassificationTask("click", summary_type="mean")`;
* tabular (2): `TabularFeatures.from_schema(schema of user_country, user_age and two scalar
  categoricals item_id (50) and category (10), aggregation="concat")`, whose tables are
  `EmbeddingBag`s, `MLPBlock([32, 16])`, `BinaryClassificationTask("click")` / `RegressionTask("click")`.

Inputs are the dict of tensors `merlin.dataloader.torch.Loader` yields for that schema: each list
feature a `[B, 8]` tensor right-padded with 0 (ids start at 1; sessions of 2..8 items), scalar
features `[B]` (int64 ids, float32 values). The model is called as `model(batch)`, its inference path
(`training=False, testing=False`), and returns a tensor: next-item scores `[B, 51]` at the last
position, or `[B]` (sigmoid / regression output, squeezed). T4R's masking draws random positions only
when the forward gets `training=True` ("mlm": in inference it masks just the appended last
position), so the calls are deterministic; the models are built in eval mode (dropout off), and the
measure's training check puts them in training mode (dropout on) as for every library.
"""
from __future__ import annotations

import copyreg
import os
import sys
import types

import torch

_DEPS = os.environ.get("T4R_DEPS", "/tmp/t4r_deps")
if os.path.isdir(_DEPS) and _DEPS not in sys.path:
    sys.path.append(_DEPS)
os.environ.setdefault("DASK_DATAFRAME__QUERY_PLANNING", "False")
# betterproto 1.2.5 keeps dataclass `Field`s (whose metadata is a mappingproxy) in every message's
# `_group_map`; `from_schema` deep-copies the schema, which Python 3.11 cannot do for a mappingproxy.
# Copy it as the read-only view of a copied dict it is (what newer Pythons' dataclasses avoid needing).
copyreg.pickle(types.MappingProxyType, lambda m: (types.MappingProxyType, (dict(m),)))

SEQ, ITEMS, CATS, DAYS, COUNTRIES, D = 8, 50, 10, 7, 6, 16


def _schema(sequence: bool = True):
    from merlin.schema import Tags as Tag
    from merlin_standard_lib import ColumnSchema, Schema

    ctx = [ColumnSchema.create_categorical("user_country", COUNTRIES, tags=[Tag.CATEGORICAL, Tag.USER]),
           ColumnSchema.create_continuous("user_age", tags=[Tag.CONTINUOUS, Tag.USER], min_value=0.0,
                                          max_value=1.0)]
    if not sequence:
        return Schema(ctx + [
            ColumnSchema.create_categorical("item_id", ITEMS, tags=[Tag.ITEM_ID, Tag.CATEGORICAL, Tag.ITEM]),
            ColumnSchema.create_categorical("category", CATS, tags=[Tag.CATEGORICAL, Tag.ITEM])])
    from merlin_standard_lib.proto.schema_bp import ValueCount

    seq = dict(value_count=ValueCount(min=1, max=SEQ))
    return Schema([
        ColumnSchema.create_categorical("item_id-list", ITEMS, tags=[Tag.ITEM_ID, Tag.CATEGORICAL, Tag.LIST,
                                                                     Tag.ITEM], **seq),
        ColumnSchema.create_categorical("category-list", CATS, tags=[Tag.CATEGORICAL, Tag.LIST, Tag.ITEM],
                                        **seq),
        ColumnSchema.create_categorical("weekday-list", DAYS, tags=[Tag.CATEGORICAL, Tag.LIST, Tag.TIME],
                                        **seq),
        ColumnSchema.create_continuous("price-list", tags=[Tag.CONTINUOUS, Tag.LIST], min_value=0.0,
                                       max_value=1.0, **seq),
    ] + ctx)


def _inputs(batch_size: int, seed: int, sequence: bool = True) -> dict:
    g = torch.Generator().manual_seed(1000 + seed)
    out = {"user_country": torch.randint(1, COUNTRIES, (batch_size,), generator=g),
           "user_age": torch.rand(batch_size, generator=g)}
    if not sequence:
        out["item_id"] = torch.randint(1, ITEMS, (batch_size,), generator=g)
        out["category"] = torch.randint(1, CATS, (batch_size,), generator=g)
        return out
    lengths = torch.randint(2, SEQ + 1, (batch_size, 1), generator=g)
    keep = torch.arange(SEQ).unsqueeze(0) < lengths
    for name, n in (("item_id-list", ITEMS), ("category-list", CATS), ("weekday-list", DAYS)):
        out[name] = torch.randint(1, n, (batch_size, SEQ), generator=g) * keep
    out["price-list"] = torch.rand(batch_size, SEQ, generator=g) * keep
    return out


def _next_item(config: str, masking: str):
    def make(batch_size: int = 32, seed: int = 0):
        import transformers4rec.torch as tr

        torch.manual_seed(seed)
        schema = _schema()
        inputs = tr.TabularSequenceFeatures.from_schema(schema, max_sequence_length=SEQ,
                                                        continuous_projection=D, aggregation="concat",
                                                        masking=masking)
        kwargs = {"total_seq_length": SEQ}
        from transformers4rec.config import transformer as configs  # tr re-exports only some of them

        cfg = getattr(configs, config).build(D, 2, 2, **kwargs)
        body = tr.SequentialBlock(inputs, tr.MLPBlock([D]), tr.TransformerBlock(cfg, masking=inputs.masking))
        head = tr.Head(body, tr.NextItemPredictionTask(weight_tying=True), inputs=inputs)
        model = tr.Model(head).eval()
        return model, (_inputs(batch_size, seed),)

    return make


def _session(task: str, transformer: bool = False):
    def make(batch_size: int = 32, seed: int = 0):
        import transformers4rec.torch as tr

        torch.manual_seed(seed)
        schema = _schema()
        inputs = tr.TabularSequenceFeatures.from_schema(schema, max_sequence_length=SEQ,
                                                        continuous_projection=D, aggregation="concat",
                                                        masking="causal" if transformer else None)
        if transformer:
            cfg = tr.XLNetConfig.build(D, 2, 2, total_seq_length=SEQ)
            body = tr.SequentialBlock(inputs, tr.MLPBlock([D]), tr.TransformerBlock(cfg, masking=inputs.masking))
            t = tr.BinaryClassificationTask("click", summary_type="mean")
        else:
            body = tr.SequentialBlock(inputs, tr.MLPBlock([32, 16]))
            t = (tr.BinaryClassificationTask("click", summary_type="first") if task == "binary"
                 else tr.RegressionTask("click", summary_type="first"))
        model = tr.Model(tr.Head(body, t, inputs=inputs)).eval()
        return model, (_inputs(batch_size, seed),)

    return make


def _tabular(task: str):
    def make(batch_size: int = 32, seed: int = 0):
        import transformers4rec.torch as tr

        torch.manual_seed(seed)
        inputs = tr.TabularFeatures.from_schema(_schema(sequence=False), aggregation="concat")
        body = tr.SequentialBlock(inputs, tr.MLPBlock([32, 16]))
        t = tr.BinaryClassificationTask("click") if task == "binary" else tr.RegressionTask("click")
        model = tr.Model(tr.Head(body, t, inputs=inputs)).eval()
        return model, (_inputs(batch_size, seed, sequence=False),)

    return make


def models() -> dict:
    out = {}
    for config, masking in (("XLNetConfig", "mlm"), ("XLNetConfig", "causal"), ("GPT2Config", "causal"),
                            ("BertConfig", "mlm"), ("AlbertConfig", "mlm"), ("ElectraConfig", "mlm"),
                            ("RobertaConfig", "mlm"), ("LongformerConfig", "causal"),
                            ("TransfoXLConfig", "causal")):
        out[f"NextItem-{config[:-6]}-{masking}"] = _next_item(config, masking)
    out["SessionMLP-Binary"] = _session("binary")
    out["SessionMLP-Regression"] = _session("regression")
    out["SessionXLNet-Binary"] = _session("binary", transformer=True)
    out["TabularMLP-Binary"] = _tabular("binary")
    out["TabularMLP-Regression"] = _tabular("regression")
    return out
