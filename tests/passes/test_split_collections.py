"""split-collections alone: one call per table of a torchrec collection; models without one are untouched."""
from __future__ import annotations

import pytest
import torch

from harness import TwoTables, compact, ids, prepare, run_alone

from dmt_compile.ir.meta import ID_ATOMS
from dmt_compile.passes.split_collections import SplitCollections


def test_models_without_collections_are_untouched():
    gm, ctx = prepare(TwoTables(), (ids(),))
    before = compact(gm)
    gm, added, removed = run_alone(SplitCollections(), gm, ctx)
    assert compact(gm) == before and not added and not removed


def test_an_ebc_becomes_one_sub_collection_per_table():
    torchrec = pytest.importorskip("torchrec", reason="torchrec is not installed (README, TorchRec recipe)")
    from torchrec.modules.embedding_configs import EmbeddingBagConfig
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ebc = torchrec.EmbeddingBagCollection(tables=[
                EmbeddingBagConfig(name="t0", embedding_dim=4, num_embeddings=10, feature_names=["f0", "f1"]),
                EmbeddingBagConfig(name="t1", embedding_dim=4, num_embeddings=10, feature_names=["f2"])])

        def forward(self, kjt):
            return self.ebc(kjt).values().sum(1, keepdim=True)

    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=torch.arange(9) % 10,
                                              lengths=torch.ones(9, dtype=torch.int64))
    model = Model()
    gm, ctx = prepare(model, (kjt,))
    gm, added, removed = run_alone(SplitCollections(), gm, ctx)
    assert added["EmbeddingBagCollection"] == 1 and not removed  # 1 call of 2 tables -> 2 calls of 1
    assert added["dmt.kjt_split"] == 1 and added["dmt.kt_merge"] == 1
    items = [n for n in gm.graph.nodes if ID_ATOMS in n.meta]
    assert [sorted(k for _, k in n.meta[ID_ATOMS]) for n in items] == [["f0", "f1"], ["f2"]]
    assert torch.equal(gm(kjt), model(kjt))
