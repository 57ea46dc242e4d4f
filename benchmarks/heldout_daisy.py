"""DaisyRec's PyTorch recommenders for the held-out capture measure, built from its own config files.

DaisyRec (`pip install --no-deps daisyRec==2.3.0`, package `daisy`; its import needs scipy,
scikit-learn, colorlog and colorama) builds every model from one config dict: `daisy/assets/basic.yaml`
updated with the model's own yaml (`mf.yaml`, `nfm.yaml`, ...), as `daisy.utils.config.init_config`
does, plus the sizes its data loader would add (`user_num`, `item_num`). The stand-in: 20 users and
30 items, every `factors` capped at 16, `gpu` empty (the constructor writes it into
`CUDA_VISIBLE_DEVICES`), `logger` None.

Measured: every class whose `forward` takes a batch of ids -- MF, FM, NFM (`forward(user, item)`,
ids `[B]`), NeuMF in its three forms (`model_name` GMF, MLP and NeuMF-end: the end-to-end one; the
NeuMF-pre form copies weights from pretrained GMF and MLP models and is the NeuMF-end graph), Item2Vec
(`forward(target_i, context_j)`, two item ids looked up in one shared table) -- and VAECF (Mult-VAE:
`forward(rating_matrix)`, a user's dense row of item ratings `[B, item_num]`, no id input).
LightGCN and NGCF are measured as they are called: `forward()` takes no input -- it propagates every
user's and item's embedding over the normalized interaction graph (a sparse matrix built from
`inter_matrix`, here 60 random interactions; `predict(u, i)` indexes the result outside `forward`);
NGCF at `hidden_size_list` [16, 16]. Their graph builder calls `dok_matrix._update`, a private scipy
method gone since scipy 1.12 (the scipy that installs beside numpy 2 has none): the factory stands in a
per-key setter for it, which builds the same matrix. Left out: the non-neural ones (EASE, ItemKNN/UserKNN, MostPop,
PureSVD, SLiM).
"""
from __future__ import annotations

import os

import torch

USERS, ITEMS = 20, 30


def _config(yaml_name: str, **extra) -> dict:
    import yaml
    import daisy

    assets = os.path.join(os.path.dirname(daisy.__file__), "assets")
    config = yaml.safe_load(open(os.path.join(assets, "basic.yaml"))) or {}
    config.update(yaml.safe_load(open(os.path.join(assets, yaml_name))) or {})
    config.update(user_num=USERS, item_num=ITEMS, gpu="", logger=None)
    config["factors"] = min(int(config.get("factors") or 16), 16)
    config.update(extra)
    return config


def _ids(n: int, batch_size: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, n, (batch_size,), generator=g)


def _pair_factory(cls_name: str, yaml_name: str, second=ITEMS, first=USERS, **extra):
    def make(batch_size: int = 32, seed: int = 0):
        import daisy.model as dm

        torch.manual_seed(seed)
        model = getattr(dm, cls_name)(_config(yaml_name, **extra))
        g = torch.Generator().manual_seed(1000 + seed)
        return model, (_ids(first, batch_size, g), _ids(second, batch_size, g))

    return make


def _vae_factory(batch_size: int = 32, seed: int = 0):
    import daisy.model as dm

    torch.manual_seed(seed)
    history = torch.randint(0, ITEMS, (USERS, 5), generator=torch.Generator().manual_seed(3))
    config = _config("multi-vae.yaml", latent_dim=16, mlp_hidden_size=[32], history_item_id=history,
                     history_item_value=torch.ones(USERS, 5))
    model = dm.VAECF(config)
    g = torch.Generator().manual_seed(1000 + seed)
    ratings = (torch.rand(batch_size, ITEMS, generator=g) < 0.2).float()
    return model, (ratings,)


def _graph_factory(cls_name: str, yaml_name: str, **extra):
    def make(batch_size: int = 32, seed: int = 0):
        import numpy as np
        import scipy.sparse as sp
        import importlib

        if not hasattr(sp.dok_matrix, "_update"):  # scipy >= 1.12 dropped the private bulk setter daisy calls
            sp.dok_matrix._update = lambda self, entries: [self.__setitem__(k, v) for k, v in entries.items()]
        module = importlib.import_module(f"daisy.model.{cls_name}Recommender")  # LightGCN: not in daisy.model
        torch.manual_seed(seed)
        rng = np.random.default_rng(3)
        pairs = {(int(u), int(i)) for u, i in zip(rng.integers(0, USERS, 60), rng.integers(0, ITEMS, 60))}
        rows, cols = map(np.array, zip(*sorted(pairs)))
        inter = sp.coo_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(USERS, ITEMS))
        return getattr(module, cls_name)(_config(yaml_name, inter_matrix=inter, **extra)), ()

    return make


def models() -> dict:
    return {
        "MF": _pair_factory("MF", "mf.yaml"),
        "FM": _pair_factory("FM", "fm.yaml"),
        "NFM": _pair_factory("NFM", "nfm.yaml"),
        "NeuMF-GMF": _pair_factory("NeuMF", "neumf.yaml", model_name="GMF", GMF_model=None, MLP_model=None),
        "NeuMF-MLP": _pair_factory("NeuMF", "neumf.yaml", model_name="MLP", GMF_model=None, MLP_model=None),
        "NeuMF-end": _pair_factory("NeuMF", "neumf.yaml", model_name="NeuMF-end", GMF_model=None,
                                   MLP_model=None),
        "Item2Vec": _pair_factory("Item2Vec", "item2vec.yaml", first=ITEMS, train_ur={}),
        "VAECF": _vae_factory,
        "LightGCN": _graph_factory("LightGCN", "lightgcn.yaml"),
        "NGCF": _graph_factory("NGCF", "ngcf.yaml", hidden_size_list=[16, 16]),
    }
