"""insert-tower-modules alone: the FeedPlan applied (decoder and direct feed), before/expected."""
from __future__ import annotations

import torch

from harness import FourFields, TwoTables, compact, ids, prepare, run_alone

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
