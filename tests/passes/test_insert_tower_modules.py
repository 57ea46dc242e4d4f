"""insert-tower-modules alone: the FeedPlan applied (decoder, direct and hierarchical feed), before/expected."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from harness import FourFields, TwoTables, compact, ids, prepare, run_alone
from test_plan_feed import TinyDCN, TinyDLRM, WideBN, dense_ids

from dmt_compile.errors import TowerModuleError

from dmt_compile.passes.detect import Detect
from dmt_compile.passes.insert_tower_modules import InsertTowerModules
from dmt_compile.passes.plan_feed import PlanFeed
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.sptt_rewrite import SpttRewrite

DECODER = """\
inputs: x
getitem = operator.getitem(%x, (:, 0))   # 6
getitem_1 = operator.getitem(%x, (:, 1))   # 6
tower0_ids = dmt.ids_exchange(0, %getitem, %getitem_1)   # t0 ids_exchange
tower0_ids_0 = operator.getitem(%tower0_ids, 0)   # 6 t0 ids_exchange
tower0_ids_1 = operator.getitem(%tower0_ids, 1)   # 6 t0 ids_exchange
a = a [Embedding](%tower0_ids_0)   # 6x4 t0 lookup
b = b [Embedding](%tower0_ids_1)   # 6x4 t0 lookup
tower0_tm = dmt.tower0_tm [CompressingTowerModule](%a, %b)   # t0 tower_module
tower0_payload_c0 = operator.getitem(%tower0_tm, 0)   # 6x4 t0 tower_module
tower0_out = dmt.outputs_exchange(0, %tower0_payload_c0)   # t0 outputs_exchange
tower0_out_c = operator.getitem(%tower0_out, 0)   # 6x4 t0 reassemble
tower0_decoder = dmt.tower0_decoder [TowerDecoder](%tower0_out_c)   # t0 decoder
tower0_out_0 = operator.getitem(%tower0_decoder, 0)   # 6x4 t0 decoder
tower0_out_1 = operator.getitem(%tower0_decoder, 1)   # 6x4 t0 decoder
stack = torch.stack([%tower0_out_0, %tower0_out_1], dim=1)   # 6x2x4
flatten = .flatten(%stack, 1)   # 6x8
top = top [Linear](%flatten)   # 6x1
return %top"""


def _rewritten(model, inputs, feed, **plan):
    gm, ctx = prepare(model, inputs)
    for p in (Detect(), PlanTowers(**plan), feed, SpttRewrite()):
        gm, _, _ = run_alone(p, gm, ctx)
    return gm, ctx


def test_decoder_before_expected():
    gm, ctx = _rewritten(TwoTables(), (ids(),), PlanFeed("linear", 2.0, "decoder"), num_towers=1)
    gm, added, removed = run_alone(InsertTowerModules(), gm, ctx)
    assert compact(gm) == DECODER
    # two payload getitems are replaced by the compressed payload and its reassembly (net zero)
    assert dict(added) == {"CompressingTowerModule": 1, "TowerDecoder": 1}
    assert dict(removed) == {"IdentityTowerModule": 1}
    assert gm(ids(batch=3)).shape == (3, 1)


def test_direct_feed_splices_compressed_embeddings_into_the_stack():
    gm, ctx = _rewritten(FourFields(), (ids(fields=4),), PlanFeed("linear", 2.0))
    gm, added, removed = run_alone(InsertTowerModules(), gm, ctx)
    stack = next(n for n in gm.graph.nodes if n.name == "stack")
    assert [a.name for a in stack.args[0]] == ["tower0_emb_0", "tower1_emb_0"]
    assert added["DirectFeed"] == 2 and added["CompressingTowerModule"] == 2
    assert "TowerDecoder" not in added and gm(ids(batch=3, fields=4)).shape == (3, 1)


def test_identity_feed_changes_nothing():
    gm, ctx = _rewritten(FourFields(), (ids(fields=4),), PlanFeed())
    before = compact(gm)
    gm, added, removed = run_alone(InsertTowerModules(), gm, ctx)
    assert compact(gm) == before and not added and not removed
    x = ids(batch=3, fields=4)
    assert torch.isfinite(gm(x)).all()


HIERARCHICAL = """\
stack = torch.stack([%bottom, %tower0_emb_0], dim=1)   # 8x2x4
transpose = .transpose(%stack, 1, 2)   # 8x4x2
bmm = torch.bmm(%stack, %transpose)   # 8x2x2
rows = get_attr rows
cols = get_attr cols
getitem_4 = operator.getitem(%bmm, (:, %rows, %cols))   # 8x1
cat = torch.cat([%bottom, %getitem_4], dim=1)   # 8x5
top = top [Linear](%cat)   # 8x1
return %top"""


def _hierarchical(model, inputs, **feed):
    gm, ctx = _rewritten(model, inputs, PlanFeed("dot", 4.0, **feed), num_towers=1)
    before = {k: v.clone() for k, v in gm.state_dict().items()}
    gm, added, removed = run_alone(InsertTowerModules(), gm, ctx)
    return gm, ctx, before, added, removed


def test_hierarchical_feed_before_expected():
    gm, ctx, _, added, removed = _hierarchical(TinyDLRM(split_buffers=True), dense_ids())
    assert compact(gm).endswith(HIERARCHICAL)  # 4 embeddings -> 1; 10 dots -> 1; top rebuilt 14 -> 5 inputs
    assert dict(added) == {"CompressingTowerModule": 1, "DirectFeed": 1} and dict(removed)["IdentityTowerModule"] == 1
    assert "TowerDecoder" not in added and type(gm.top) is nn.Linear and gm.top.in_features == 5
    dense, x = dense_ids(batch=3)
    assert gm(dense, x).shape == (3, 1)


def test_rebuilt_layers_keep_their_names_and_the_trained_values_that_still_exist():
    gm, ctx, before, _, _ = _hierarchical(TinyDLRM(split_buffers=True), dense_ids())
    after = gm.state_dict()
    assert set(before) <= set(after)  # the same keys (plus the Tower Module's), buffers included
    assert after["cols"].tolist() == [1] and gm.rows.tolist() == [0]  # triu_indices(2, 2, 1)
    assert torch.equal(after["top.weight"][:, :4], before["top.weight"][:, :4])  # the dense vector's columns
    assert torch.equal(after["top.bias"], before["top.bias"])
    assert not torch.equal(after["top.weight"][:, 4:], before["top.weight"][:, 4:5])  # d.piece is a new column
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith(("top.", "cols", "rows")))


def test_hierarchical_output_is_the_model_over_compressed_embeddings():
    """The rebuilt model computes exactly DLRM over [dense, compressed tower embedding]."""
    gm, ctx, _, _, _ = _hierarchical(TinyDLRM(split_buffers=True), dense_ids())
    gm.eval()
    dense, x = dense_ids(batch=5)
    tm = gm.get_submodule("dmt.tower0_tm")
    with torch.no_grad():
        d = gm.bottom(dense)
        piece = tm.core(torch.cat([getattr(gm.tables, str(i))(x[:, i]) for i in range(4)], dim=1))
        z = torch.stack([d, piece], dim=1)
        dots = torch.bmm(z, z.transpose(1, 2))[:, 0, 1:]
        expected = gm.top(torch.cat([d, dots], dim=1))
        assert torch.allclose(gm(dense, x), expected, atol=1e-6, rtol=0)


def test_dcn_cross_layers_keep_the_dense_block():
    gm, ctx, before, _, _ = _hierarchical(TinyDCN(), dense_ids())
    after = gm.state_dict()
    for k in ("cross.0", "cross.1"):
        assert after[f"{k}.weight"].shape == (7, 7)
        assert torch.equal(after[f"{k}.weight"][:3, :3], before[f"{k}.weight"][:3, :3])
        assert torch.equal(after[f"{k}.bias"][:3], before[f"{k}.bias"][:3])
    assert torch.equal(after["norm.weight"][:3], before["norm.weight"][:3]) and after["norm.weight"].shape == (7,)
    # the LayerNorm mixes every column, so the head's inputs are all new features: nothing to keep
    assert after["head.weight"].shape == (1, 7) and torch.equal(after["head.bias"], before["head.bias"])
    dense, x = dense_ids(batch=4)
    assert gm(dense, x).shape == (4, 1)


def test_batch_norm_keeps_the_running_statistics_that_still_exist():
    gm, ctx, before, _, _ = _hierarchical(WideBN(), dense_ids())
    bn = gm.bn
    assert type(bn) is torch.nn.BatchNorm1d and bn.num_features == 7
    assert torch.equal(bn.running_mean[:3], before["bn.running_mean"][:3]) and bn.running_mean[3:].eq(0).all()
    assert bn.running_var[3:].eq(1).all() and torch.equal(bn.num_batches_tracked, before["bn.num_batches_tracked"])


def test_rebuild_init_default_starts_every_rebuilt_layer_afresh():
    gm, ctx, before, _, _ = _hierarchical(TinyDCN(), dense_ids(), rebuild_init="default")
    assert not torch.equal(gm.state_dict()["head.bias"], before["head.bias"])
    assert not torch.equal(gm.state_dict()["cross.0.weight"][:3, :3], before["cross.0.weight"][:3, :3])


def test_a_stale_feed_plan_is_a_typed_error():
    gm, ctx = _rewritten(TinyDLRM(), dense_ids(), PlanFeed("dot", 4.0), num_towers=1)
    gm.top = nn.Linear(20, 1)  # the model changed after plan-feed
    with pytest.raises(TowerModuleError, match="top has shape") as info:
        run_alone(InsertTowerModules(), gm, ctx)
    assert "run plan-feed again" in str(info.value)
