"""NextRec's model classes for the held-out capture measure, called as its trainer calls them.

NextRec (`pip install --no-deps nextrec==0.6.14`; its import needs pandas, polars, pyarrow, pyyaml,
rich, scikit-learn, scipy and `transformers` — 4.46.3 with huggingface_hub 0.26.5 and tokenizers
0.20.3 import without network access) describes a model by feature objects: `SparseFeature` (one id
per sample, its own table unless `embedding_name` shares one), `SequenceFeature` (`[B, L]` ids,
pooled by a combiner, padding id 0) and `DenseFeature` (one float per sample). Its trainer collates
each sample's features into a dict `{name: tensor [B] or [B, L]}` and calls `model(features)`.

The measure builds every ranking, multi-task and matching model class on one feature set:

* sparse `c0`..`c3` (vocabularies 20..23, dim 8), sparse `item` (vocabulary 30, dim 8, the table
  `item_table` which the behaviour sequence shares), sequence `hist` (item ids, `[B, 5]`, mean-pooled,
  table `item_table`), dense `d0`, `d1`;
* the ranking models with their defaults; DIN / BST / DIEN with `hist` as the behaviour and `item`
  as the candidate (DIEN without negative sampling, which needs a second behaviour sequence);
* the multi-task models with two binary targets; PEPNet / APG / POSO with `c0` as the domain /
  scene feature;
* the matching models (two-tower) with `c0`, `c1`, `hist`, `d0` as the user side and `item`, `c2`,
  `c3` as the item side, trained pointwise (the model returns one score per user-item pair).

* the sequential generators GRU4Rec, SASRec, HSTU and HLLM (task `generative`: logits over the
  catalogue at every position of `hist`, `[B, 5, items]`) with `hist` as the item history and
  `c0`..`c3`, `d0`, `d1` as context (measured after the first run of the 36 above, as its own run).

Tiger needs semantic-id features prepared upstream by an RQ-VAE (`[B, L, codebooks]`), and RQ-VAE
itself reads dense item vectors with no id input; neither is measured.
"""
from __future__ import annotations

import warnings

import torch

VOCABS = (20, 21, 22, 23)
ITEMS, SEQ_LEN, DIM = 30, 5, 8


def _features():
    from nextrec.basic.features import DenseFeature, SequenceFeature, SparseFeature

    sparse = [SparseFeature(f"c{i}", vocab_size=v, embedding_dim=DIM) for i, v in enumerate(VOCABS)]
    sparse.append(SparseFeature("item", vocab_size=ITEMS, embedding_dim=DIM, embedding_name="item_table"))
    seq = [SequenceFeature("hist", vocab_size=ITEMS, embedding_dim=DIM, max_len=SEQ_LEN,
                           embedding_name="item_table", combiner="mean", padding_idx=0)]
    dense = [DenseFeature("d0"), DenseFeature("d1")]
    return dense, sparse, seq


def _inputs(batch_size: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(1000 + seed)
    x = {f"c{i}": torch.randint(0, v, (batch_size,), generator=g) for i, v in enumerate(VOCABS)}
    x["item"] = torch.randint(1, ITEMS, (batch_size,), generator=g)
    lengths = torch.randint(1, SEQ_LEN + 1, (batch_size, 1), generator=g)
    hist = torch.randint(1, ITEMS, (batch_size, SEQ_LEN), generator=g)
    x["hist"] = torch.where(torch.arange(SEQ_LEN).unsqueeze(0) < lengths, hist, 0)  # 0 pads
    x["d0"] = torch.randn(batch_size, generator=g)
    x["d1"] = torch.randn(batch_size, generator=g)
    return x


MLP = {"hidden_dims": [16, 8]}
RANKING = {
    "AFM": {}, "AutoInt": {}, "DCN": {}, "DCNv2": {}, "DeepFM": {}, "DLRM": {}, "EulerNet": {},
    "FFM": {}, "FiBiNET": {}, "FM": {}, "LR": {}, "MaskNet": {}, "NFM": {}, "OneTrans": {}, "PNN": {},
    "WideDeep": {}, "xDeepFM": {},
    "DIN": {"behavior_feature_name": "hist", "candidate_feature_name": "item"},
    "BST": {"behavior_feature_name": "hist", "candidate_feature_name": "item"},
    "DIEN": {"behavior_feature_name": "hist", "candidate_feature_name": "item", "use_negsampling": False},
}
TOWERS = [MLP, MLP]  # one tower per task
MULTITASK = {
    "AITM": {"bottom_mlp_params": MLP, "tower_mlp_params_list": TOWERS},
    "CrossStitch": {"tower_mlp_params_list": TOWERS},
    "ESMM": {"ctr_mlp_params": MLP, "cvr_mlp_params": MLP},
    "HMOE": {"tower_mlp_params_list": TOWERS, "task_weight_mlp_params": TOWERS},
    "MMOE": {"tower_mlp_params_list": TOWERS},
    "PLE": {"shared_expert_mlp_params": MLP, "specific_expert_mlp_params": TOWERS, "tower_mlp_params_list": TOWERS},
    "ShareBottom": {"bottom_mlp_params": MLP, "tower_mlp_params_list": TOWERS},
    "SNRTrans": {"tower_mlp_params_list": TOWERS},
    "PEPNet": {"domain_features": ["c0"]},
    "APG": {"scene_features": ["c0"]},
    "POSO": {"main_dense_features": ["d0", "d1"], "main_sparse_features": ["c1", "c2", "c3", "item"],
             "main_sequence_features": ["hist"], "pc_dense_features": [], "pc_sparse_features": ["c0"],
             "pc_sequence_features": [], "tower_mlp_params_list": TOWERS},
}
MATCHING = ("DSSM", "DSSM_v2", "MIND", "SDM", "YoutubeDNN")
_MODULES = {"AFM": "afm", "AutoInt": "autoint", "DCN": "dcn", "DCNv2": "dcn_v2", "DeepFM": "deepfm",
            "DLRM": "dlrm", "EulerNet": "eulernet", "FFM": "ffm", "FiBiNET": "fibinet", "FM": "fm",
            "LR": "lr", "MaskNet": "masknet", "NFM": "nfm", "OneTrans": "onetrans", "PNN": "pnn",
            "WideDeep": "widedeep", "xDeepFM": "xdeepfm", "DIN": "din", "BST": "bst", "DIEN": "dien",
            "AITM": "aitm", "CrossStitch": "cross_stitch", "ESMM": "esmm", "HMOE": "hmoe", "MMOE": "mmoe",
            "PLE": "ple", "ShareBottom": "share_bottom", "SNRTrans": "snr_trans", "PEPNet": "pepnet",
            "APG": "apg", "POSO": "poso", "DSSM": "dssm", "DSSM_v2": "dssm_v2", "MIND": "mind",
            "SDM": "sdm", "YoutubeDNN": "youtube_dnn"}


def _cls(family: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"nextrec.models.{family}.{_MODULES[name]}"), name)


def _ranking(name: str, kwargs: dict, multitask: bool):
    def make(batch_size: int = 32, seed: int = 0):
        dense, sparse, seq = _features()
        torch.manual_seed(seed)
        family = "multitask" if multitask else "ranking"
        extra = dict(kwargs)
        if name == "MaskNet":  # every masked field the same width: dense features projected to DIM
            from nextrec.basic.features import DenseFeature

            dense = [DenseFeature(f.name, use_projection=True, proj_dim=DIM) for f in dense]
        targets = {"target": ["ctr", "cvr"], "task": ["binary", "binary"]} if multitask else {"target": "y"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _cls(family, name)(dense_features=dense, sparse_features=sparse, sequence_features=seq,
                                       **targets, **extra)
        return model, (_inputs(batch_size, seed),)

    return make


def _matching(name: str):
    def make(batch_size: int = 32, seed: int = 0):
        dense, sparse, seq = _features()
        torch.manual_seed(seed)
        by = {f.name: f for f in dense + sparse + seq}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _cls("matching", name)(
                user_dense_features=[by["d0"]], user_sparse_features=[by["c0"], by["c1"]],
                user_sequence_features=[by["hist"]], item_sparse_features=[by["item"], by["c2"], by["c3"]],
                embedding_dim=DIM, training_mode="pointwise", target="y")
        x = _inputs(batch_size, seed)
        x.pop("d1")
        return model, (x,)

    return make


SEQUENTIAL = {"GRU4Rec": ("gru4rec", {"task": "generative"}), "SASRec": ("sasrec", {"task": "generative"}),
              "HSTU": ("hstu", {"num_items": ITEMS}), "HLLM": ("hllm", {})}


def _sequential(name: str):
    def make(batch_size: int = 32, seed: int = 0):
        import importlib

        dense, sparse, seq = _features()
        torch.manual_seed(seed)
        module, kwargs = SEQUENTIAL[name]
        cls = getattr(importlib.import_module(f"nextrec.models.sequential.{module}"), name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = cls(sequence_features=seq, sparse_features=sparse[:4], dense_features=dense,
                        item_history_name="hist", **kwargs)
        return model, (_inputs(batch_size, seed),)

    return make


def models() -> dict:
    out = {name: _ranking(name, kw, False) for name, kw in RANKING.items()}
    out.update({name: _ranking(name, kw, True) for name, kw in MULTITASK.items()})
    out.update({name: _matching(name) for name in MATCHING})
    out.update({name: _sequential(name) for name in SEQUENTIAL})
    return out
