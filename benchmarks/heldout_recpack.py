"""recpack's PyTorch algorithms for the held-out capture measure: their torch modules, called as the
algorithms call them.

recpack (`pip install --no-deps recpack==0.3.6`; its import needs scipy, scikit-learn and its pure
deps) wraps each neural algorithm (a scikit-learn style `fit` / `predict` on a user x item matrix)
around one `nn.Module` it keeps in `model_`. The measure builds those modules with the arguments the
algorithm's `_init_model` passes, at 20 users and 30 items, and calls them on what its training
loop feeds them:

* `BPRMF` -> `MFModule(users, items, num_components=16)` on `(user ids [B], item ids [B])`; it
  returns the `[B, B]` matrix of every user-item dot product (`w_u.matmul(h_i.T)`), of which BPR reads
  the diagonal;
* `GRU4RecCrossEntropy` / `GRU4RecNegSampling` (one module) -> `GRU4RecTorch(items, hidden_size=16,
  num_components=16, pad_token=items)` on `(item sequences [B, 6], the zero hidden state
  `init_hidden(B)`)`, each batch right-padded with the pad token and sorted by length, longest
  first, as `SequenceMiniBatchSampler` gives it;
* `Prod2Vec` / `Prod2VecClustered` (one module) -> `SkipGram(items, 16)` on `(focus items
  [B, 1], context items [B, 3]: two negatives and a positive)`, as `Prod2Vec._train_epoch` calls it;
* `MultVAE` -> `MultiVAETorch(items, dim_hidden_layer=32, dim_bottleneck_layer=8)` and `RecVAE` ->
  `RecVAETorch(32, 8, items)`, both on a dense `[B, items]` row of a user's interactions (no id
  input: the item axis is the input's width).

Every torch algorithm of recpack 0.3.6 is measured; the others (EASE, ItemKNN and its TARS variants,
KUNN, NMF, SVD, SLIM, Popularity, Random, SequentialRules, STAN, WeightedMatrixFactorization) are
not neural networks.
"""
from __future__ import annotations

import torch

USERS, ITEMS, SEQ_LEN = 20, 30, 6


def _mf(batch_size: int = 32, seed: int = 0):
    from recpack.algorithms.bprmf import MFModule

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1000 + seed)
    return MFModule(USERS, ITEMS, num_components=16), (torch.randint(0, USERS, (batch_size,), generator=g),
                                                       torch.randint(0, ITEMS, (batch_size,), generator=g))


def _gru4rec(batch_size: int = 32, seed: int = 0):
    from recpack.algorithms.gru4rec import GRU4RecTorch

    torch.manual_seed(seed)
    model = GRU4RecTorch(ITEMS, hidden_size=16, num_components=16, pad_token=ITEMS)
    g = torch.Generator().manual_seed(1000 + seed)
    lengths = torch.randint(1, SEQ_LEN + 1, (batch_size,), generator=g).sort(descending=True).values
    seq = torch.randint(0, ITEMS, (batch_size, SEQ_LEN), generator=g)
    seq = torch.where(torch.arange(SEQ_LEN).unsqueeze(0) < lengths.unsqueeze(1), seq, ITEMS)
    return model, (seq, model.init_hidden(batch_size))


def _skipgram(batch_size: int = 32, seed: int = 0):
    from recpack.algorithms.p2v import SkipGram

    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(1000 + seed)
    return SkipGram(ITEMS, 16), (torch.randint(0, ITEMS, (batch_size, 1), generator=g),
                                 torch.randint(0, ITEMS, (batch_size, 3), generator=g))


def _vae(kind: str):
    def make(batch_size: int = 32, seed: int = 0):
        from recpack.algorithms.mult_vae import MultiVAETorch
        from recpack.algorithms.rec_vae import RecVAETorch

        torch.manual_seed(seed)
        model = (MultiVAETorch(ITEMS, dim_hidden_layer=32, dim_bottleneck_layer=8) if kind == "mult"
                 else RecVAETorch(32, 8, ITEMS))
        g = torch.Generator().manual_seed(1000 + seed)
        return model, ((torch.rand(batch_size, ITEMS, generator=g) < 0.2).float(),)

    return make


def models() -> dict:
    return {"BPRMF": _mf, "GRU4Rec": _gru4rec, "Prod2Vec": _skipgram, "MultVAE": _vae("mult"),
            "RecVAE": _vae("rec")}
