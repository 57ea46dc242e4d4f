"""sptt-rewrite alone: boundary nodes and identity Tower Modules, before/expected, exact numerics."""
from __future__ import annotations

import torch

from harness import TwoTables, compact, ids, prepare, run_alone

from dmt_compile.ir.graph import tower_nodes
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.sptt_rewrite import SpttRewrite

BEFORE = """\
inputs: x
getitem = operator.getitem(%x, (:, 0))   # 6
a = a [Embedding](%getitem)   # 6x4
getitem_1 = operator.getitem(%x, (:, 1))   # 6
b = b [Embedding](%getitem_1)   # 6x4
stack = torch.stack([%a, %b], dim=1)   # 6x2x4
flatten = .flatten(%stack, 1)   # 6x8
top = top [Linear](%flatten)   # 6x1
return %top"""

EXPECTED = """\
inputs: x
getitem = operator.getitem(%x, (:, 0))   # 6
tower0_ids = dmt.ids_exchange(0, %getitem)   # t0 ids_exchange
tower0_ids_0 = operator.getitem(%tower0_ids, 0)   # 6 t0 ids_exchange
a = a [Embedding](%tower0_ids_0)   # 6x4 t0 lookup
tower0_tm = dmt.tower0_tm [IdentityTowerModule](%a)   # t0 tower_module
tower0_payload_0 = operator.getitem(%tower0_tm, 0)   # 6x4 t0 tower_module
tower0_out = dmt.outputs_exchange(0, %tower0_payload_0)   # t0 outputs_exchange
tower0_out_0 = operator.getitem(%tower0_out, 0)   # 6x4 t0 reassemble
getitem_1 = operator.getitem(%x, (:, 1))   # 6
tower1_ids = dmt.ids_exchange(1, %getitem_1)   # t1 ids_exchange
tower1_ids_0 = operator.getitem(%tower1_ids, 0)   # 6 t1 ids_exchange
b = b [Embedding](%tower1_ids_0)   # 6x4 t1 lookup
tower1_tm = dmt.tower1_tm [IdentityTowerModule](%b)   # t1 tower_module
tower1_payload_0 = operator.getitem(%tower1_tm, 0)   # 6x4 t1 tower_module
tower1_out = dmt.outputs_exchange(1, %tower1_payload_0)   # t1 outputs_exchange
tower1_out_0 = operator.getitem(%tower1_out, 0)   # 6x4 t1 reassemble
stack = torch.stack([%tower0_out_0, %tower1_out_0], dim=1)   # 6x2x4
flatten = .flatten(%stack, 1)   # 6x8
top = top [Linear](%flatten)   # 6x1
return %top"""


def _planned():
    model = TwoTables()
    gm, ctx = prepare(model, (ids(),))
    for p in (Detect(), PlanTowers(towers={"x[:,0]": 0, "x[:,1]": 1})):
        gm, _, _ = run_alone(p, gm, ctx)
    return model, gm, ctx


def test_before_expected_and_mutation_counts():
    model, gm, ctx = _planned()
    assert compact(gm) == BEFORE
    gm, added, removed = run_alone(SpttRewrite(), gm, ctx)
    assert compact(gm) == EXPECTED
    assert dict(added) == {"dmt.ids_exchange": 2, "operator.getitem": 6, "IdentityTowerModule": 2,
                           "dmt.outputs_exchange": 2}
    assert not removed


def test_identity_rewrite_is_exact_and_towers_are_found():
    model, gm, ctx = _planned()
    gm, _, _ = run_alone(SpttRewrite(), gm, ctx)
    x = ids(batch=5)
    assert torch.equal(gm(x), model(x))
    towers = tower_nodes(gm.graph)
    assert sorted(towers) == [0, 1] and [n.name for n in towers[1].lookups] == ["b"]
    assert towers[0].ids.name == "tower0_ids" and towers[0].out.name == "tower0_out"
