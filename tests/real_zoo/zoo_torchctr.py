"""torchctr (0.2) model zoo: every model class in torchctr.models.

All torchctr models take one LongTensor x [B, F] (per-field ids) and a `sigmoid=True` flag. Tables
are one concatenated nn.Embedding(sum(feature_dims) + 1|2, D); per-field offsets are a plain tensor
attribute (``self.feature_loc_offsets = torch.tensor(np.array(...))``, neither buffer nor
parameter) added in forward: ``x + self.feature_loc_offsets``. Constructors must get keyword
arguments (a `Checker.model_param_check` decorator rebuilds them).
"""
from __future__ import annotations

import torch

REQUIREMENTS = ["torchctr==0.2 --no-deps", "numpy"]  # its dash/flask/sklearn deps are dashboard-only

FIELD_DIMS = [10, 20, 30, 40, 50, 60]
EMBED_DIM = 16


def _build(ctor, batch_size=32, seed=0):
    torch.manual_seed(seed)
    model = ctor()
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.stack([torch.randint(0, v, (batch_size,), generator=g) for v in FIELD_DIMS], dim=1)
    return model, (x,)


def make_torchctr_logisticregression(batch_size=32, seed=0):
    from torchctr.models import LogisticRegression
    return _build(lambda: LogisticRegression(feature_dims=FIELD_DIMS), batch_size, seed)


def make_torchctr_factorizationmachine(batch_size=32, seed=0):
    from torchctr.models import FactorizationMachine
    return _build(lambda: FactorizationMachine(feature_dims=FIELD_DIMS, embed_dim=EMBED_DIM), batch_size, seed)


def make_torchctr_fieldawarefactorizationmachine(batch_size=32, seed=0):
    from torchctr.models import FieldAwareFactorizationMachine
    return _build(lambda: FieldAwareFactorizationMachine(feature_dims=FIELD_DIMS, embed_dim=4), batch_size, seed)


def make_torchctr_wideanddeepmodel(batch_size=32, seed=0):
    from torchctr.models import WideAndDeepModel
    return _build(lambda: WideAndDeepModel(feature_dims=FIELD_DIMS, embed_dim=EMBED_DIM, hidden_dims=[32, 16]),
                  batch_size, seed)


def make_torchctr_deepfactorizationmachine(batch_size=32, seed=0):
    from torchctr.models import DeepFactorizationMachine
    return _build(lambda: DeepFactorizationMachine(feature_dims=FIELD_DIMS, embed_dim=EMBED_DIM, hidden_dims=[32, 16]),
                  batch_size, seed)


def make_torchctr_neuralfactorizationmachine(batch_size=32, seed=0):
    from torchctr.models import NeuralFactorizationMachine
    return _build(lambda: NeuralFactorizationMachine(feature_dims=FIELD_DIMS, embed_dim=EMBED_DIM,
                                                     hidden_dims=[32, 16]), batch_size, seed)


def make_torchctr_fieldawareneuralfactorizationmachine(batch_size=32, seed=0):
    from torchctr.models import FieldAwareNeuralFactorizationMachine
    return _build(lambda: FieldAwareNeuralFactorizationMachine(feature_dims=FIELD_DIMS, embed_dim=4,
                                                               hidden_dims=[32, 16]), batch_size, seed)


MODELS = {
    "LogisticRegression": make_torchctr_logisticregression,
    "FactorizationMachine": make_torchctr_factorizationmachine,
    "FieldAwareFactorizationMachine": make_torchctr_fieldawarefactorizationmachine,
    "WideAndDeepModel": make_torchctr_wideanddeepmodel,
    "DeepFactorizationMachine": make_torchctr_deepfactorizationmachine,
    "NeuralFactorizationMachine": make_torchctr_neuralfactorizationmachine,
    "FieldAwareNeuralFactorizationMachine": make_torchctr_fieldawareneuralfactorizationmachine,
}
