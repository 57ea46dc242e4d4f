"""lower alone: rank (host 0) of a 2x1 world, before/expected, what it keeps and what it drops."""
from __future__ import annotations

import pytest
import torch

from harness import TwoTables, compact, ids, prepare, run_alone
from test_sptt_rewrite import EXPECTED as BEFORE  # the graph sptt-rewrite leaves is what lower reads

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.lowering.lower import Lowered, LowerForRank, RankLayout
from dmt_compile.passes.detect import Detect
from dmt_compile.passes.plan_towers import PlanTowers
from dmt_compile.passes.sptt_rewrite import SpttRewrite

# host 0 keeps tower 0's lookup (now a TowerLookup) and Tower Module; tower 1's table and TM are gone
EXPECTED = """\
inputs: x
getitem = operator.getitem(%x, (:, 0))   # 6
getitem_1 = operator.getitem(%x, (:, 1))   # 6
dist_ids = dist.ids [PeerIdsExchange]([%getitem], [%getitem_1])   # ids_exchange
tower0_ids_in = operator.getitem(%dist_ids, 0)   # t0
tower1_ids_in = operator.getitem(%dist_ids, 1)   # t1
tower0_lookup = dist.tower0_lookup [TowerLookup](%tower0_ids_in)   # t0 lookup
a_rows = operator.getitem(%tower0_lookup, 0)   # t0 lookup
tower0_tm = dmt.tower0_tm [IdentityTowerModule](%a_rows)   # t0 tower_module
tower0_payload_0 = operator.getitem(%tower0_tm, 0)   # 6x4 t0 tower_module
dist_outputs = dist.outputs [OutputsStart]([%tower0_payload_0])   # outputs_exchange
dist_outputs_wait = dist.outputs_wait [OutputsWait](%dist_outputs)   # outputs_exchange
tower0_out_in = operator.getitem(%dist_outputs_wait, 0)   # t0
tower1_out_in = operator.getitem(%dist_outputs_wait, 1)   # t1
tower0_out_0 = operator.getitem(%tower0_out_in, 0)   # 6x4 t0 reassemble
tower1_out_0 = operator.getitem(%tower1_out_in, 0)   # 6x4 t1 reassemble
stack = torch.stack([%tower0_out_0, %tower1_out_0], dim=1)   # 6x2x4
flatten = .flatten(%stack, 1)   # 6x8
top = top [Linear](%flatten)   # 6x1
return %top"""

LAYOUT = RankLayout(num_hosts=2, local_size=1, host=0, local=0, peer_group=None, lookup_group=None)


def _rewritten():
    model = TwoTables()
    gm, ctx = prepare(model, (ids(),), "2x1")
    for p in (Detect(), PlanTowers(towers={"x[:,0]": 0, "x[:,1]": 1}), SpttRewrite()):
        gm, _, _ = run_alone(p, gm, ctx)
    return model, gm, ctx


def test_before_expected_and_parameters_by_kind():
    model, gm, ctx = _rewritten()
    assert compact(gm) == BEFORE
    lowered_gm, added, removed = run_alone(LowerForRank(LAYOUT), gm, ctx)
    assert compact(lowered_gm) == EXPECTED
    assert compact(gm) == BEFORE  # the single-process graph is left as it was
    assert added == {"PeerIdsExchange": 1, "TowerLookup": 1, "OutputsStart": 1, "OutputsWait": 1,
                     "operator.getitem": 2}
    assert removed == {"dmt.ids_exchange": 2, "dmt.outputs_exchange": 2, "Embedding": 2, "IdentityTowerModule": 1}
    lowered = ctx.get(Lowered)
    assert lowered.gm is lowered_gm
    assert [p is model.a.weight for p in lowered.embedding_params] == [True]  # host 0 owns table a only
    assert all(p is not model.b.weight for p in lowered_gm.parameters())
    assert {id(p) for p in lowered.dense_params} == {id(model.top.weight), id(model.top.bias)}
    assert lowered.owners == {0: [0]}


def test_requires_a_layout_and_tower_boundaries():
    model, gm, ctx = _rewritten()
    with pytest.raises(RuntimeSetupError, match="needs the rank's layout"):
        run_alone(LowerForRank(), gm, ctx)
    plain, plain_ctx = prepare(TwoTables(), (ids(),), "2x1")
    for p in (Detect(), PlanTowers(num_towers=2)):
        plain, _, _ = run_alone(p, plain, plain_ctx)
    with pytest.raises(RuntimeSetupError, match="no tower boundaries"):
        run_alone(LowerForRank(LAYOUT), plain, plain_ctx)
    torch.testing.assert_close(gm(ids()), model(ids()))  # the failed runs changed nothing
