"""mlgb's PyTorch models for the held-out capture measure, built from small synthetic feature names.

mlgb (`pip install mlgb`, 0.0.7; https://github.com/UlionTse/mlgb) keeps one TensorFlow and one PyTorch
copy of each model. Its top-level `import mlgb` imports the TensorFlow copies too, so the measure
stands in an empty `mlgb` package whose path is the installed folder and imports only
`mlgb.torch.agg`, the three maps name -> class of the PyTorch ranking, multi-task and matching models.

Every model takes `feature_names` as mlgb's `mlgb.data.get_label_data` builds it -- a tuple of groups
(dense names, sparse names with their vocabulary sizes, sequence names with their length) -- and is
called on a list with one array per group: dense `[B, n_dense]` float, sparse `[B, n_sparse]` int,
sequence `[B, n_seq, L]` int. The stand-in: two numeric features, seven categorical fields with
vocabularies from 4 to 30 (seven: FLEN's default field groups index fields 0-6), and two sequence
fields of length 4 (zero-padded on the right). As in
mlgb's `examples/torch_ranking.py`, PLM and the sequential models (GRU4Rec, Caser, SASRec, BERT4Rec,
BST, DIN, DIEN, DSIN) take two such groups (user, item); the matching models take two groups too
(user, item), with `task="multiclass:10"` (their own kind of task; in 0.0.7 the PyTorch copies fail
eagerly with it -- the activation layer has no "softmax"; MIND names an undefined `MaskLayer` -- and
with "binary" (an unset `user_dnn_hidden_units`), so they are
measured as not runnable). Multi-task models get `task=("binary", "binary")`.
Small sizes: every `*hidden_units` default capped at 32 units (mlgb's default `embed_dim=32` is kept:
DIEN's attention needs its last GRU width equal to it).

mlgb builds its layers lazily on the first call (like Keras' `build`), so each factory calls the new
model once, under the seed, before handing it over.
"""
from __future__ import annotations

import inspect
import os
import sys
import types

import torch

SEQ_LEN = 4
_DENSE = ("d0", "d1")
_SPARSE = (("c0", 5), ("c1", 9), ("c2", 13), ("c3", 20), ("c4", 4), ("c5", 7), ("c6", 30))
_SEQ = (("s0", 11), ("s1", 7))
TWO_GROUP = ("PLM", "GRU4Rec", "Caser", "SASRec", "BERT4Rec", "BST", "DIN", "DIEN", "DSIN")


def _stand_in_mlgb() -> None:
    """`import mlgb` runs mlgb/main.py, which imports the TensorFlow models; the measure needs only the
    PyTorch ones, so an empty package with the installed folder as its path stands in for `mlgb`."""
    if "mlgb" in sys.modules:
        return
    import importlib.util

    spec = importlib.util.find_spec("mlgb")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mlgb: pip install --no-deps mlgb==0.0.7")
    package = types.ModuleType("mlgb")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["mlgb"] = package


def _sparse_name(name: str, nunique: int, input_length: int) -> dict:
    """What `mlgb.utils.get_sparse_feature_name_dict` returns (mask_zero, embed_alpha=6): repeated here
    because mlgb/utils.py imports tensorflow."""
    return {"feature_name": name, "input_length": input_length, "mask_zero": True, "feature_nunique": nunique,
            "embed_feature_nunique": nunique + 1, "embed_dim": int((nunique + 1) ** 0.25 * 6)}


def _names(dense, sparse, seq) -> tuple:
    return (tuple({"feature_name": n} for n in dense),
            tuple(_sparse_name(n, k, 1) for n, k in sparse),
            tuple(_sparse_name(n, k, SEQ_LEN) for n, k in seq))


def _group_inputs(dense, sparse, seq, batch_size: int, g: torch.Generator) -> list:
    d = torch.rand(batch_size, len(dense), generator=g)
    s = torch.stack([torch.randint(1, k + 1, (batch_size,), generator=g) for _, k in sparse], dim=1)
    seqs = []
    for _, k in seq:
        ids = torch.randint(1, k + 1, (batch_size, SEQ_LEN), generator=g)
        lengths = torch.randint(1, SEQ_LEN + 1, (batch_size, 1), generator=g)
        seqs.append(ids * (torch.arange(SEQ_LEN).unsqueeze(0) < lengths))
    return [d, s.int(), torch.stack(seqs, dim=1).int()]


def _groups(two: bool):
    if not two:
        return [(_DENSE, _SPARSE, _SEQ)]
    return [(_DENSE[:1], _SPARSE[:3], _SEQ[:1]), (_DENSE[1:], _SPARSE[3:], _SEQ[1:])]


def feature_names(two: bool) -> tuple:
    groups = [_names(*g) for g in _groups(two)]
    return tuple(groups) if two else groups[0]


def inputs(two: bool, batch_size: int, seed: int) -> list:
    g = torch.Generator().manual_seed(3000 + seed)
    groups = [_group_inputs(*spec, batch_size, g) for spec in _groups(two)]
    return groups if two else groups[0]


def _small_kwargs(cls) -> dict:
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name.endswith("hidden_units") and isinstance(p.default, tuple) and p.default:
            out[name] = tuple(min(int(x), 32) for x in p.default)
    return out


def _factory(cls, two: bool, task):
    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        kwargs = _small_kwargs(cls)
        if task is not None:
            kwargs["task"] = task
        model = cls(feature_names(two), device="cpu", **kwargs)
        x = inputs(two, batch_size, seed)
        with torch.no_grad():
            model(x)  # mlgb builds its layers on the first call
        return model, (x,)

    return make


def models() -> dict:
    """name -> factory(batch_size, seed) -> (model, (inputs,)) for every PyTorch model class of mlgb."""
    _stand_in_mlgb()
    from mlgb.torch.agg import torch_matching_models_map, torch_mtl_models_map, torch_ranking_models_map

    out = {}
    for name, cls in torch_ranking_models_map.items():
        out[name] = _factory(cls, name in TWO_GROUP, None)
    for name, cls in torch_mtl_models_map.items():
        out[name] = _factory(cls, False, ("binary", "binary"))
    for name, cls in torch_matching_models_map.items():
        out[name] = _factory(cls, True, "multiclass:10")
    return out
