"""Torch-RecHub (`torch_rechub`) model zoo: ranking, multi-task and (two-tower) matching models.

Torch-RecHub models take ONE dict ``x = {feature_name: tensor}`` (sparse ids [B] long, dense values
[B] float, sequences [B, L] long). ``EmbeddingLayer`` keeps one nn.Embedding per feature in an
nn.ModuleDict (``embed_dict``), looks each up with ``x[name].long()``, pools sequences with pooling
modules *instantiated inside forward* (SumPooling()/AveragePooling()/ConcatPooling()), and
masks with ``x[name].long() != padding_idx``.

Not covered (and why): the session models NARM, SASRec, STAMP, SINE (single item-sequence inputs, no
multi-field CTR structure) and the generative models (HSTU, HLLM, TIGER, RQVAE) — out of scope for a
CTR census.
"""
from __future__ import annotations

import torch

REQUIREMENTS = [
    "torch-rechub==0.9.0 --no-deps",
    "numpy", "pandas", "scikit-learn", "tqdm",  # imported by torch_rechub.utils / basic
]

VOCABS = (10, 20, 30, 40, 50, 60)
EMBED_DIM = 16
SEQ_LEN = 5
MLP = {"dims": [32, 16], "dropout": 0.2, "activation": "relu"}
MLP_NO_ACT = {"dims": [32, 16], "dropout": 0.2}  # DIN/DIEN fix activation="dice" themselves


def _sparse(names_vocabs=None):
    from torch_rechub.basic.features import SparseFeature

    nv = names_vocabs or [(f"C{i + 1}", v) for i, v in enumerate(VOCABS)]
    return [SparseFeature(n, vocab_size=v, embed_dim=EMBED_DIM) for n, v in nv]


def _dense(n=2):
    from torch_rechub.basic.features import DenseFeature

    return [DenseFeature(f"I{i + 1}") for i in range(n)]


def _inputs(features, batch_size, seed):
    """dict input for any list of rechub features (sparse ids, dense floats, padded sequences)."""
    from torch_rechub.basic.features import DenseFeature, SequenceFeature, SparseFeature

    g = torch.Generator().manual_seed(1000 + seed)
    x = {}
    for f in features:
        if f.name in x:
            continue
        if isinstance(f, SequenceFeature):
            seq = torch.randint(1, f.vocab_size, (batch_size, SEQ_LEN), generator=g)
            lengths = torch.randint(1, SEQ_LEN + 1, (batch_size, 1), generator=g)
            x[f.name] = seq * (torch.arange(SEQ_LEN).unsqueeze(0) < lengths)
        elif isinstance(f, SparseFeature):
            x[f.name] = torch.randint(0, f.vocab_size, (batch_size,), generator=g)
        elif isinstance(f, DenseFeature):
            x[f.name] = torch.rand(batch_size, generator=g)
        else:
            raise TypeError(f)
    return x


def _build(ctor, all_features, batch_size, seed):
    torch.manual_seed(seed)
    model = ctor()
    return model, (_inputs(all_features, batch_size, seed),)


# ------------------------------------------------------------------------------------- ranking


def make_rechub_widedeep(batch_size=32, seed=0):
    from torch_rechub.models.ranking import WideDeep
    d, s = _dense(), _sparse()
    return _build(lambda: WideDeep(wide_features=d, deep_features=s, mlp_params=MLP), d + s, batch_size, seed)


def make_rechub_deepfm(batch_size=32, seed=0):
    from torch_rechub.models.ranking import DeepFM
    d, s = _dense(), _sparse()
    return _build(lambda: DeepFM(deep_features=d + s, fm_features=s, mlp_params=MLP), d + s, batch_size, seed)


def make_rechub_dcn(batch_size=32, seed=0):
    from torch_rechub.models.ranking import DCN
    d, s = _dense(), _sparse()
    return _build(lambda: DCN(features=d + s, n_cross_layers=2, mlp_params=MLP), d + s, batch_size, seed)


def make_rechub_dcnv2(batch_size=32, seed=0):
    from torch_rechub.models.ranking import DCNv2
    d, s = _dense(), _sparse()
    return _build(lambda: DCNv2(features=d + s, n_cross_layers=2, mlp_params=MLP, model_structure="parallel",
                                low_rank=8, num_experts=2), d + s, batch_size, seed)


def make_rechub_edcn(batch_size=32, seed=0):
    from torch_rechub.models.ranking import EDCN
    s = _sparse()
    return _build(lambda: EDCN(features=s, n_cross_layers=2, mlp_params=MLP), s, batch_size, seed)


def make_rechub_afm(batch_size=32, seed=0):
    from torch_rechub.models.ranking import AFM
    s = _sparse()
    return _build(lambda: AFM(fm_features=s, embed_dim=EMBED_DIM, t=8), s, batch_size, seed)


def make_rechub_fibinet(batch_size=32, seed=0):
    from torch_rechub.models.ranking import FiBiNet
    s = _sparse()
    return _build(lambda: FiBiNet(features=s, mlp_params=MLP, reduction_ratio=3), s, batch_size, seed)


def _ffm_features():
    """DeepFFM: linear features of dim 1, cross features with one vector per (field, other field)."""
    from torch_rechub.basic.features import SparseFeature

    n = len(VOCABS)
    lin = [SparseFeature(f"C{i + 1}", vocab_size=v, embed_dim=1) for i, v in enumerate(VOCABS)]
    cross = [SparseFeature(f"C{i + 1}", vocab_size=v * n, embed_dim=EMBED_DIM) for i, v in enumerate(VOCABS)]
    return lin, cross


def make_rechub_deepffm(batch_size=32, seed=0):
    from torch_rechub.models.ranking import DeepFFM
    lin, cross = _ffm_features()
    return _build(lambda: DeepFFM(linear_features=lin, cross_features=cross, embed_dim=EMBED_DIM, mlp_params=MLP),
                  lin, batch_size, seed)


def make_rechub_fatdeepffm(batch_size=32, seed=0):
    from torch_rechub.models.ranking import FatDeepFFM
    lin, cross = _ffm_features()
    return _build(lambda: FatDeepFFM(linear_features=lin, cross_features=cross, embed_dim=EMBED_DIM,
                                     reduction_ratio=1, mlp_params=MLP), lin, batch_size, seed)


def make_rechub_autoint(batch_size=32, seed=0):
    from torch_rechub.models.ranking import AutoInt
    d, s = _dense(), _sparse()
    return _build(lambda: AutoInt(sparse_features=s, dense_features=d, num_layers=2, num_heads=2, dropout=0.0,
                                  mlp_params=MLP), d + s, batch_size, seed)


def _din_features():
    from torch_rechub.basic.features import SequenceFeature, SparseFeature

    feats = [SparseFeature("user_id", 8, EMBED_DIM), SparseFeature("age", 5, EMBED_DIM)]
    target = [SparseFeature("target_item", 30, EMBED_DIM), SparseFeature("target_cate", 10, EMBED_DIM)]
    hist = [SequenceFeature("hist_item", 30, EMBED_DIM, pooling="concat", shared_with="target_item", padding_idx=0),
            SequenceFeature("hist_cate", 10, EMBED_DIM, pooling="concat", shared_with="target_cate", padding_idx=0)]
    return feats, hist, target


def make_rechub_din(batch_size=32, seed=0):
    from torch_rechub.models.ranking import DIN
    f, h, t = _din_features()
    return _build(lambda: DIN(features=f, history_features=h, target_features=t, mlp_params=MLP_NO_ACT,
                              attention_mlp_params={"dims": [16, 8]}), f + h + t, batch_size, seed)


def make_rechub_bst(batch_size=32, seed=0):
    from torch_rechub.models.ranking import BST
    f, h, t = _din_features()
    return _build(lambda: BST(features=f, history_features=h, target_features=t, mlp_params=MLP, nhead=2,
                              dropout=0.2, num_layers=1, max_seq_len=SEQ_LEN + 1), f + h + t, batch_size, seed)


def make_rechub_dien(batch_size=32, seed=0):
    from torch_rechub.basic.features import SequenceFeature
    from torch_rechub.models.ranking import DIEN
    f, h, t = _din_features()
    neg = [SequenceFeature("neg_hist_item", 30, EMBED_DIM, pooling="concat", shared_with="target_item", padding_idx=0),
           SequenceFeature("neg_hist_cate", 10, EMBED_DIM, pooling="concat", shared_with="target_cate", padding_idx=0)]
    return _build(lambda: DIEN(features=f, history_features=h, neg_history_features=neg, target_features=t,
                               mlp_params=MLP_NO_ACT, alpha=0.2), f + h + neg + t, batch_size, seed)


# ---------------------------------------------------------------------------------- multi-task

TASKS = ["classification", "classification"]
TOWERS = [{"dims": [8]}, {"dims": [8]}]


def make_rechub_sharedbottom(batch_size=32, seed=0):
    from torch_rechub.models.multi_task import SharedBottom
    d, s = _dense(), _sparse()
    return _build(lambda: SharedBottom(features=d + s, task_types=TASKS, bottom_params={"dims": [32]},
                                       tower_params_list=TOWERS), d + s, batch_size, seed)


def make_rechub_esmm(batch_size=32, seed=0):
    from torch_rechub.models.multi_task import ESMM
    s = _sparse()
    return _build(lambda: ESMM(user_features=s[:3], item_features=s[3:], cvr_params={"dims": [16, 8]},
                               ctr_params={"dims": [16, 8]}), s, batch_size, seed)


def make_rechub_mmoe(batch_size=32, seed=0):
    from torch_rechub.models.multi_task import MMOE
    d, s = _dense(), _sparse()
    return _build(lambda: MMOE(features=d + s, task_types=TASKS, n_expert=3, expert_params={"dims": [16]},
                               tower_params_list=TOWERS), d + s, batch_size, seed)


def make_rechub_ple(batch_size=32, seed=0):
    from torch_rechub.models.multi_task import PLE
    d, s = _dense(), _sparse()
    return _build(lambda: PLE(features=d + s, task_types=TASKS, n_level=1, n_expert_specific=2, n_expert_shared=1,
                              expert_params={"dims": [16]}, tower_params_list=TOWERS), d + s, batch_size, seed)


def make_rechub_aitm(batch_size=32, seed=0):
    from torch_rechub.models.multi_task import AITM
    d, s = _dense(), _sparse()
    return _build(lambda: AITM(features=d + s, n_task=2, bottom_params={"dims": [32, 16]},
                               tower_params_list=TOWERS), d + s, batch_size, seed)


# ------------------------------------------------------------------------------------ matching


def _two_tower_features():
    user = _sparse([("user_id", 20), ("gender", 3), ("age", 7)])
    item = _sparse([("item_id", 40), ("cate_id", 10), ("brand", 12)])
    return user, item


def make_rechub_dssm(batch_size=32, seed=0):
    from torch_rechub.models.matching import DSSM
    u, i = _two_tower_features()
    return _build(lambda: DSSM(u, i, user_params={"dims": [32, 16]}, item_params={"dims": [32, 16]}),
                  u + i, batch_size, seed)


def make_rechub_facebookdssm(batch_size=32, seed=0):
    from torch_rechub.basic.features import SparseFeature
    from torch_rechub.models.matching import FaceBookDSSM
    u, i = _two_tower_features()
    neg = [SparseFeature("neg_item_id", 40, EMBED_DIM, shared_with="item_id")]
    return _build(lambda: FaceBookDSSM(u, i[:1], neg, user_params={"dims": [32, 16]}, item_params={"dims": [32, 16]}),
                  u + i[:1] + neg, batch_size, seed)


def _seq_user_features():
    from torch_rechub.basic.features import SequenceFeature, SparseFeature

    user = [SparseFeature("user_id", 20, EMBED_DIM), SparseFeature("gender", 3, EMBED_DIM)]
    hist = [SequenceFeature("hist_item_id", 40, EMBED_DIM, pooling="mean", shared_with="item_id", padding_idx=0)]
    item = [SparseFeature("item_id", 40, EMBED_DIM)]
    neg = [SequenceFeature("neg_items", 40, EMBED_DIM, pooling="concat", shared_with="item_id")]
    return user, hist, item, neg


def make_rechub_youtubednn(batch_size=32, seed=0):
    from torch_rechub.models.matching import YoutubeDNN
    u, h, i, n = _seq_user_features()
    return _build(lambda: YoutubeDNN(u + h, i, n, user_params={"dims": [32, 16]}), u + h + i + n, batch_size, seed)


def make_rechub_youtubesbc(batch_size=32, seed=0):
    from torch_rechub.basic.features import DenseFeature
    from torch_rechub.models.matching import YoutubeSBC
    u, i = _two_tower_features()
    w = [DenseFeature("sample_weight")]
    return _build(lambda: YoutubeSBC(u, i, w, user_params={"dims": [32, 16]}, item_params={"dims": [32, 16]},
                                     batch_size=batch_size, n_neg=3), u + i + w, batch_size, seed)


def _hist_concat():
    from torch_rechub.basic.features import SequenceFeature

    return [SequenceFeature("hist_item_id", 40, EMBED_DIM, pooling="concat", shared_with="item_id", padding_idx=0)]


def make_rechub_gru4rec(batch_size=32, seed=0):
    from torch_rechub.models.matching import GRU4Rec
    u, _, i, n = _seq_user_features()
    h = _hist_concat()
    return _build(lambda: GRU4Rec(u, h, i, n, user_params={"dims": [32, EMBED_DIM]}),
                  u + h + i + n, batch_size, seed)


def make_rechub_mind(batch_size=32, seed=0):
    from torch_rechub.models.matching import MIND
    u, _, i, n = _seq_user_features()
    h = _hist_concat()
    return _build(lambda: MIND(u, h, i, n, max_length=SEQ_LEN, interest_num=2), u + h + i + n, batch_size, seed)


def make_rechub_comirecsa(batch_size=32, seed=0):
    from torch_rechub.models.matching import ComirecSA
    u, _, i, n = _seq_user_features()
    h = _hist_concat()
    return _build(lambda: ComirecSA(u, h, i, n, interest_num=2), u + h + i + n, batch_size, seed)


def make_rechub_comirecdr(batch_size=32, seed=0):
    from torch_rechub.models.matching import ComirecDR
    u, _, i, n = _seq_user_features()
    h = _hist_concat()
    return _build(lambda: ComirecDR(u, h, i, n, max_length=SEQ_LEN, interest_num=2), u + h + i + n, batch_size, seed)


MODELS = {
    "WideDeep": make_rechub_widedeep,
    "DeepFM": make_rechub_deepfm,
    "DCN": make_rechub_dcn,
    "DCNv2": make_rechub_dcnv2,
    "EDCN": make_rechub_edcn,
    "AFM": make_rechub_afm,
    "FiBiNet": make_rechub_fibinet,
    "DeepFFM": make_rechub_deepffm,
    "FatDeepFFM": make_rechub_fatdeepffm,
    "AutoInt": make_rechub_autoint,
    "DIN": make_rechub_din,
    "BST": make_rechub_bst,
    "DIEN": make_rechub_dien,
    "SharedBottom": make_rechub_sharedbottom,
    "ESMM": make_rechub_esmm,
    "MMOE": make_rechub_mmoe,
    "PLE": make_rechub_ple,
    "AITM": make_rechub_aitm,
    "DSSM": make_rechub_dssm,
    "FaceBookDSSM": make_rechub_facebookdssm,
    "YoutubeDNN": make_rechub_youtubednn,
    "YoutubeSBC": make_rechub_youtubesbc,
    "GRU4Rec": make_rechub_gru4rec,
    "MIND": make_rechub_mind,
    "ComirecSA": make_rechub_comirecsa,
    "ComirecDR": make_rechub_comirecdr,
}
