"""pytorch-fm (`torchfm`) model zoo: every model class in torchfm.model.*, at small sizes.

All torchfm models take one LongTensor ``x`` of shape [B, F] (one id per field, per-field ids in
[0, field_dims[f])). Every model uses one concatenated ``nn.Embedding(sum(field_dims), D)`` inside
``FeaturesEmbedding`` / ``FeaturesLinear`` and adds per-field offsets held as a *numpy* array on the
module: ``x = x + x.new_tensor(self.offsets).unsqueeze(0)``.
"""
from __future__ import annotations

import torch

REQUIREMENTS = ["torchfm==0.7.0 --no-deps", "numpy>=2.0  # torchfm uses np.long (removed in 1.24, back in 2.0)"]

FIELD_DIMS = (10, 20, 30, 40, 50, 60)
EMBED_DIM = 16


def _ids(batch_size: int, seed: int, field_dims=FIELD_DIMS) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.stack([torch.randint(0, v, (batch_size,), generator=g) for v in field_dims], dim=1)


def _build(ctor, batch_size=32, seed=0, field_dims=FIELD_DIMS):
    torch.manual_seed(seed)
    model = ctor(list(field_dims))
    return model, (_ids(batch_size, seed, field_dims),)


def make_torchfm_lr(batch_size=32, seed=0):
    from torchfm.model.lr import LogisticRegressionModel
    return _build(lambda fd: LogisticRegressionModel(fd), batch_size, seed)


def make_torchfm_fm(batch_size=32, seed=0):
    from torchfm.model.fm import FactorizationMachineModel
    return _build(lambda fd: FactorizationMachineModel(fd, EMBED_DIM), batch_size, seed)


def make_torchfm_ffm(batch_size=32, seed=0):
    from torchfm.model.ffm import FieldAwareFactorizationMachineModel
    return _build(lambda fd: FieldAwareFactorizationMachineModel(fd, 4), batch_size, seed)


def make_torchfm_fnn(batch_size=32, seed=0):
    from torchfm.model.fnn import FactorizationSupportedNeuralNetworkModel
    return _build(lambda fd: FactorizationSupportedNeuralNetworkModel(fd, EMBED_DIM, (32, 16), 0.2), batch_size, seed)


def make_torchfm_wd(batch_size=32, seed=0):
    from torchfm.model.wd import WideAndDeepModel
    return _build(lambda fd: WideAndDeepModel(fd, EMBED_DIM, (32, 16), 0.2), batch_size, seed)


def make_torchfm_ipnn(batch_size=32, seed=0):
    from torchfm.model.pnn import ProductNeuralNetworkModel
    return _build(lambda fd: ProductNeuralNetworkModel(fd, EMBED_DIM, (32, 16), 0.2, method="inner"), batch_size, seed)


def make_torchfm_opnn(batch_size=32, seed=0):
    from torchfm.model.pnn import ProductNeuralNetworkModel
    return _build(lambda fd: ProductNeuralNetworkModel(fd, EMBED_DIM, (32, 16), 0.2, method="outer"), batch_size, seed)


def make_torchfm_dcn(batch_size=32, seed=0):
    from torchfm.model.dcn import DeepCrossNetworkModel
    return _build(lambda fd: DeepCrossNetworkModel(fd, EMBED_DIM, 3, (32, 16), 0.2), batch_size, seed)


def make_torchfm_nfm(batch_size=32, seed=0):
    from torchfm.model.nfm import NeuralFactorizationMachineModel
    return _build(lambda fd: NeuralFactorizationMachineModel(fd, EMBED_DIM, (32,), (0.2, 0.2)), batch_size, seed)


def make_torchfm_ncf(batch_size=32, seed=0):
    # NCF in torchfm's example uses two fields (user, item) and user_field_idx/item_field_idx arrays.
    import numpy as np
    from torchfm.model.ncf import NeuralCollaborativeFiltering
    fd = (30, 40)
    return _build(lambda f: NeuralCollaborativeFiltering(f, user_field_idx=np.array((0,), dtype=np.int64),
                                                         item_field_idx=np.array((1,), dtype=np.int64),
                                                         embed_dim=EMBED_DIM, mlp_dims=(32, 16), dropout=0.2),
                  batch_size, seed, field_dims=fd)


def make_torchfm_fnfm(batch_size=32, seed=0):
    from torchfm.model.fnfm import FieldAwareNeuralFactorizationMachineModel
    return _build(lambda fd: FieldAwareNeuralFactorizationMachineModel(fd, 4, (32,), (0.2, 0.2)), batch_size, seed)


def make_torchfm_dfm(batch_size=32, seed=0):
    from torchfm.model.dfm import DeepFactorizationMachineModel
    return _build(lambda fd: DeepFactorizationMachineModel(fd, EMBED_DIM, (32, 16), 0.2), batch_size, seed)


def make_torchfm_xdfm(batch_size=32, seed=0):
    from torchfm.model.xdfm import ExtremeDeepFactorizationMachineModel
    return _build(lambda fd: ExtremeDeepFactorizationMachineModel(fd, EMBED_DIM, (32, 16), 0.2, (16, 16), split_half=False),
                  batch_size, seed)


def make_torchfm_afm(batch_size=32, seed=0):
    from torchfm.model.afm import AttentionalFactorizationMachineModel
    return _build(lambda fd: AttentionalFactorizationMachineModel(fd, EMBED_DIM, 16, (0.2, 0.2)), batch_size, seed)


def make_torchfm_afi(batch_size=32, seed=0):
    from torchfm.model.afi import AutomaticFeatureInteractionModel
    return _build(lambda fd: AutomaticFeatureInteractionModel(fd, EMBED_DIM, 16, 2, 2, (32, 16), (0.2, 0.2)), batch_size, seed)


def make_torchfm_afn(batch_size=32, seed=0):
    from torchfm.model.afn import AdaptiveFactorizationNetwork
    return _build(lambda fd: AdaptiveFactorizationNetwork(fd, EMBED_DIM, 8, (32, 16), (0.2, 0.2)), batch_size, seed)


MODELS = {
    "lr": make_torchfm_lr,
    "fm": make_torchfm_fm,
    "ffm": make_torchfm_ffm,
    "fnn": make_torchfm_fnn,
    "wd": make_torchfm_wd,
    "ipnn": make_torchfm_ipnn,
    "opnn": make_torchfm_opnn,
    "dcn": make_torchfm_dcn,
    "nfm": make_torchfm_nfm,
    "ncf": make_torchfm_ncf,
    "fnfm": make_torchfm_fnfm,
    "dfm": make_torchfm_dfm,
    "xdfm": make_torchfm_xdfm,
    "afm": make_torchfm_afm,
    "afi": make_torchfm_afi,
    "afn": make_torchfm_afn,
}
