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


def _ebc_model(read):
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
            return read(self.ebc(kjt))

    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=torch.arange(9) % 10,
                                              lengths=torch.ones(9, dtype=torch.int64))
    return Model(), kjt


def test_an_ebc_becomes_one_sub_collection_per_table():
    model, kjt = _ebc_model(lambda kt: kt.values().sum(1, keepdim=True))
    gm, ctx = prepare(model, (kjt,))
    gm, added, removed = run_alone(SplitCollections(), gm, ctx)
    assert added["EmbeddingBagCollection"] == 1  # 1 call of 2 tables -> 2 calls of 1
    assert added["dmt.kjt_split"] == 1
    # kt.values() reads each key from its table: the cat of the keys' embeddings, no merged KeyedTensor
    assert removed == {".values": 1} and added["dmt.kt_get"] == 3 and added["torch.cat"] == 1
    assert "dmt.kt_merge" not in added
    items = [n for n in gm.graph.nodes if ID_ATOMS in n.meta]
    assert [sorted(k for _, k in n.meta[ID_ATOMS]) for n in items] == [["f0", "f1"], ["f2"]]
    assert torch.equal(gm(kjt), model(kjt))


@pytest.mark.parametrize("read,gets,merged_stays", [
    (lambda kt: torch.stack([kt.to_dict()[k] for k in ("f2", "f0", "f1")], 1), 3, False),  # TorchRec DLRM's read
    (lambda kt: kt["f1"] * 2 + kt["f2"], 2, False),
    (lambda kt: kt.to_dict()["f0"] + kt.values()[:, :4], 4, False),
    (lambda kt: (kt.to_dict()["f0"], kt.keys()), 1, True),  # keys(): not a read by key, the merge stays
])
def test_reads_by_key_come_from_the_keys_table(read, gets, merged_stays):
    """Before: `read(ebc(kjt))`. Expected: every read of a key is `kt_get(<its table's lookup>, key)`;
    the merged KeyedTensor stays only where something else reads it; the function is unchanged."""
    model, kjt = _ebc_model(read)
    gm, ctx = prepare(model, (kjt,))
    gm, added, removed = run_alone(SplitCollections(), gm, ctx)
    assert added["dmt.kt_get"] == gets and ("dmt.kt_merge" in added) == merged_stays
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target.__name__ == "kt_get":
            table = node.args[0]
            owner = {"f0": "t0", "f1": "t0", "f2": "t1"}[node.args[1]]
            assert table.op == "call_module" and table.target.endswith(f"ebc_{owner}")
    out, ref = gm(kjt), model(kjt)
    first = lambda x: x[0] if isinstance(x, tuple) else x  # noqa: E731
    assert torch.equal(first(out), first(ref))
