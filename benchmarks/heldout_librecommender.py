"""LibRecommender's PyTorch models for the held-out capture measure (first run: benchmarks/results/heldout/).

LibRecommender 1.5.2 (`pip install --no-deps librecommender==1.5.2`, package `libreco`) is mostly a
TensorFlow library: `import libreco.algorithms` (and so `libreco.algorithms.torch_modules`, whose
package `__init__` runs it first) imports every algorithm, and `libreco.utils.misc` imports
`libreco.tfops`, which imports `tensorflow`. TensorFlow is not installed here (nor wanted), so the
library's own import path fails; its TensorFlow models (DeepFM, WideDeep, AutoInt, DIN, YouTube*,
TwoTower, Transformer, RNN4Rec, Caser, WaveNet, SIM, NCF, FM, SVD/SVD++, ...) are not measured.

Its PyTorch modules are `libreco/algorithms/torch_modules/*.py`. Two of them import only numpy,
scipy and torch -- `LightGCNModel` and `NGCFModel` -- and the factory loads those two files on their own
(by file path, without running the package `__init__`), which builds the library's own classes:
* `LightGCNModel(n_users, n_items, embed_size, n_layers, dropout_rate, user_consumed, device)` and
  `NGCFModel(n_users, n_items, embed_size, layers, node_dropout, message_dropout, user_consumed,
  device)`, with 20 users, 30 items, `user_consumed` 3 random items per user (the normalized
  interaction graph is built from it), `embed_size` 16, LightGCN's 3 layers and NGCF's layers (16, 16)
  instead of its (64, 64, 64), dropouts 0 (the library's defaults), device "cpu".
* called as `libreco.training.torch_trainer` calls them: `torch_model(use_dropout=True)` -- no id input:
  `forward` propagates every user's and item's embedding over the graph and returns both whole tables
  (the trainer indexes them by the batch's ids outside `forward`). With the dropouts at 0 the call is
  deterministic.
Left out: `GraphSageModel` and `PinSageModel` import `libreco.utils.validate`, which imports
`libreco.utils.misc` and so TensorFlow; their DGL forms also need `dgl` (not installed).
"""
from __future__ import annotations

import importlib.util
import os
import sys

import torch

USERS, ITEMS, EMBED = 20, 30, 16


def _torch_module(stem: str):
    """libreco/algorithms/torch_modules/<stem>.py loaded alone (its package __init__ imports TensorFlow)."""
    name = f"_libreco_torch_modules_{stem}"
    if name not in sys.modules:
        root = importlib.util.find_spec("libreco").submodule_search_locations[0]
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(root, "algorithms", "torch_modules", f"{stem}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _consumed() -> dict:
    g = torch.Generator().manual_seed(3)
    return {u: torch.randperm(ITEMS, generator=g)[:3].tolist() for u in range(USERS)}


def _lightgcn(batch_size: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    model = _torch_module("lightgcn_module").LightGCNModel(USERS, ITEMS, EMBED, 3, 0.0, _consumed(), "cpu")
    return model, (True,)


def _ngcf(batch_size: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    model = _torch_module("ngcf_module").NGCFModel(USERS, ITEMS, EMBED, (16, 16), 0.0, 0.0, _consumed(), "cpu")
    return model, (True,)


def models() -> dict:
    return {"LightGCN": _lightgcn, "NGCF": _ngcf}
