"""DeepCTR-Torch (`deepctr_torch`) model zoo: every model class in deepctr_torch.models.*.

DeepCTR-Torch models take ONE float tensor X [B, n_columns]: sparse ids (as floats), dense values and
padded sequences + their lengths, concatenated in the order of `model.feature_index`
(name -> (start, end) column range). Each feature is read as ``X[:, start:end].long()`` and looked up in
``self.embedding_dict`` (an nn.ModuleDict of one nn.Embedding per feature); the linear part
(`self.linear_model`) has its own dim-1 tables.
"""
from __future__ import annotations

import torch

REQUIREMENTS = [
    "deepctr-torch==0.3.0 --no-deps",
    "scikit-learn", "tqdm", "requests",  # imported at package import (requests: a version check thread)
]

VOCABS = (10, 20, 30, 40, 50, 60)
EMBED_DIM = 16
N_DENSE = 2
SEQ_LEN = 4


def _columns(dense=True):
    from deepctr_torch.inputs import DenseFeat, SparseFeat

    cols = [SparseFeat(f"C{i + 1}", v, embedding_dim=EMBED_DIM) for i, v in enumerate(VOCABS)]
    if dense:
        cols += [DenseFeat(f"I{i + 1}", 1) for i in range(N_DENSE)]
    return cols


def _make_x(feature_columns, feature_index, batch_size, seed):
    """X in feature_index order: sparse ids as floats, dense uniform, sequences padded with 0."""
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    g = torch.Generator().manual_seed(1000 + seed)
    by_name = {fc.name: fc for fc in feature_columns}
    lengths = torch.randint(1, SEQ_LEN + 1, (batch_size, 1), generator=g)
    length_names = {fc.length_name for fc in feature_columns if isinstance(fc, VarLenSparseFeat)}
    cols = []
    for name, (start, end) in feature_index.items():
        fc = by_name.get(name)
        if name in length_names and fc is None:
            cols.append(lengths.float())
        elif isinstance(fc, SparseFeat):
            cols.append(torch.randint(0, fc.vocabulary_size, (batch_size, 1), generator=g).float())
        elif isinstance(fc, DenseFeat):
            cols.append(torch.rand(batch_size, fc.dimension, generator=g))
        elif isinstance(fc, VarLenSparseFeat):
            seq = torch.randint(1, fc.vocabulary_size, (batch_size, fc.maxlen), generator=g)
            mask = torch.arange(fc.maxlen).unsqueeze(0) < lengths
            cols.append((seq * mask).float())
        else:
            raise TypeError(f"unknown column {name}")
        assert cols[-1].shape[1] == end - start, name
    return torch.cat(cols, dim=1)


def _build(ctor, batch_size=32, seed=0, linear=True, dense=True, columns=None, dnn_dense=True):
    """dnn_dense=False: dense columns only in the linear part (AFM, CCPM reject DenseFeat in dnn columns)."""
    torch.manual_seed(seed)
    cols = columns() if columns is not None else _columns(dense)
    if linear:
        dnn_cols = cols if dnn_dense else _columns(dense=False)
        model = ctor(cols, dnn_cols)
    else:
        model = ctor(cols)
    x = _make_x(cols, model.feature_index, batch_size, seed)
    return model, (x,)


def make_deepctr_wdl(batch_size=32, seed=0):
    from deepctr_torch.models import WDL
    return _build(lambda l, d: WDL(l, d, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_deepfm(batch_size=32, seed=0):
    from deepctr_torch.models import DeepFM
    return _build(lambda l, d: DeepFM(l, d, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_xdeepfm(batch_size=32, seed=0):
    from deepctr_torch.models import xDeepFM
    return _build(lambda l, d: xDeepFM(l, d, dnn_hidden_units=(32, 16), cin_layer_size=(16, 16), seed=seed),
                  batch_size, seed)


def make_deepctr_afm(batch_size=32, seed=0):
    from deepctr_torch.models import AFM
    return _build(lambda l, d: AFM(l, d, attention_factor=8, seed=seed), batch_size, seed, dnn_dense=False)


def make_deepctr_difm(batch_size=32, seed=0):
    from deepctr_torch.models import DIFM
    return _build(lambda l, d: DIFM(l, d, att_head_num=2, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_ifm(batch_size=32, seed=0):
    from deepctr_torch.models import IFM
    return _build(lambda l, d: IFM(l, d, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_autoint(batch_size=32, seed=0):
    from deepctr_torch.models import AutoInt
    return _build(lambda l, d: AutoInt(l, d, att_layer_num=2, att_head_num=2, dnn_hidden_units=(32, 16), seed=seed),
                  batch_size, seed)


def make_deepctr_dcn(batch_size=32, seed=0):
    from deepctr_torch.models import DCN
    return _build(lambda l, d: DCN(l, d, cross_num=2, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_dcn_matrix(batch_size=32, seed=0):
    from deepctr_torch.models import DCN
    return _build(lambda l, d: DCN(l, d, cross_num=2, cross_parameterization="matrix", dnn_hidden_units=(32, 16),
                                   seed=seed), batch_size, seed)


def make_deepctr_dcnmix(batch_size=32, seed=0):
    from deepctr_torch.models import DCNMix
    return _build(lambda l, d: DCNMix(l, d, cross_num=2, dnn_hidden_units=(32, 16), low_rank=8, num_experts=2,
                                      seed=seed), batch_size, seed)


def make_deepctr_fibinet(batch_size=32, seed=0):
    from deepctr_torch.models import FiBiNET
    return _build(lambda l, d: FiBiNET(l, d, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_nfm(batch_size=32, seed=0):
    from deepctr_torch.models import NFM
    return _build(lambda l, d: NFM(l, d, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_mlr(batch_size=32, seed=0):
    from deepctr_torch.models import MLR
    return _build(lambda c: MLR(c, region_num=4, seed=seed), batch_size, seed, linear=False)


def make_deepctr_onn(batch_size=32, seed=0):
    from deepctr_torch.models import ONN
    return _build(lambda l, d: ONN(l, d, dnn_hidden_units=(32, 16), seed=seed), batch_size, seed)


def make_deepctr_pnn(batch_size=32, seed=0):
    from deepctr_torch.models import PNN
    return _build(lambda c: PNN(c, dnn_hidden_units=(32, 16), use_inner=True, use_outter=True, seed=seed),
                  batch_size, seed, linear=False)


def make_deepctr_ccpm(batch_size=32, seed=0):
    from deepctr_torch.models import CCPM
    return _build(lambda l, d: CCPM(l, d, conv_kernel_width=(3, 2), conv_filters=(4, 4), dnn_hidden_units=(32,),
                                    seed=seed), batch_size, seed, dnn_dense=False)


def make_deepctr_afn(batch_size=32, seed=0):
    from deepctr_torch.models import AFN
    return _build(lambda l, d: AFN(l, d, ltl_hidden_size=16, afn_dnn_hidden_units=(32, 16), seed=seed),
                  batch_size, seed)


def _din_columns():
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat

    return [
        SparseFeat("user", 8, embedding_dim=EMBED_DIM),
        SparseFeat("gender", 2, embedding_dim=EMBED_DIM),
        SparseFeat("item_id", 30, embedding_dim=EMBED_DIM),
        SparseFeat("cate_id", 10, embedding_dim=EMBED_DIM),
        DenseFeat("pay_score", 1),
        VarLenSparseFeat(SparseFeat("hist_item_id", 30, embedding_dim=EMBED_DIM, embedding_name="item_id"),
                         maxlen=SEQ_LEN, length_name="seq_length"),
        VarLenSparseFeat(SparseFeat("hist_cate_id", 10, embedding_dim=EMBED_DIM, embedding_name="cate_id"),
                         maxlen=SEQ_LEN, length_name="seq_length"),
    ]


def make_deepctr_din(batch_size=32, seed=0):
    from deepctr_torch.models import DIN
    return _build(lambda c: DIN(c, ["item_id", "cate_id"], dnn_hidden_units=(32, 16), att_hidden_size=(16, 8),
                                seed=seed), batch_size, seed, linear=False, columns=_din_columns)


def make_deepctr_dien(batch_size=32, seed=0):
    from deepctr_torch.models import DIEN
    return _build(lambda c: DIEN(c, ["item_id", "cate_id"], gru_type="AUGRU", dnn_hidden_units=(32, 16),
                                 att_hidden_units=(16, 8), seed=seed), batch_size, seed, linear=False,
                  columns=_din_columns)


def make_deepctr_sharedbottom(batch_size=32, seed=0):
    from deepctr_torch.models import SharedBottom
    return _build(lambda c: SharedBottom(c, bottom_dnn_hidden_units=(32, 16), tower_dnn_hidden_units=(8,), seed=seed),
                  batch_size, seed, linear=False)


def make_deepctr_esmm(batch_size=32, seed=0):
    from deepctr_torch.models import ESMM
    return _build(lambda c: ESMM(c, tower_dnn_hidden_units=(32, 16), seed=seed), batch_size, seed, linear=False)


def make_deepctr_mmoe(batch_size=32, seed=0):
    from deepctr_torch.models import MMOE
    return _build(lambda c: MMOE(c, num_experts=3, expert_dnn_hidden_units=(32, 16), gate_dnn_hidden_units=(8,),
                                 tower_dnn_hidden_units=(8,), seed=seed), batch_size, seed, linear=False)


def make_deepctr_ple(batch_size=32, seed=0):
    from deepctr_torch.models import PLE
    return _build(lambda c: PLE(c, shared_expert_num=1, specific_expert_num=1, num_levels=2,
                                expert_dnn_hidden_units=(32, 16), gate_dnn_hidden_units=(8,),
                                tower_dnn_hidden_units=(8,), seed=seed), batch_size, seed, linear=False)


MODELS = {
    "WDL": make_deepctr_wdl,
    "DeepFM": make_deepctr_deepfm,
    "xDeepFM": make_deepctr_xdeepfm,
    "AFM": make_deepctr_afm,
    "DIFM": make_deepctr_difm,
    "IFM": make_deepctr_ifm,
    "AutoInt": make_deepctr_autoint,
    "DCN": make_deepctr_dcn,
    "DCN-matrix": make_deepctr_dcn_matrix,
    "DCNMix": make_deepctr_dcnmix,
    "FiBiNET": make_deepctr_fibinet,
    "NFM": make_deepctr_nfm,
    "MLR": make_deepctr_mlr,
    "ONN": make_deepctr_onn,
    "PNN": make_deepctr_pnn,
    "CCPM": make_deepctr_ccpm,
    "AFN": make_deepctr_afn,
    "DIN": make_deepctr_din,
    "DIEN": make_deepctr_dien,
    "SharedBottom": make_deepctr_sharedbottom,
    "ESMM": make_deepctr_esmm,
    "MMOE": make_deepctr_mmoe,
    "PLE": make_deepctr_ple,
}
