"""Overlap in the lowered per-rank program: the output exchange is posted right after my host's
Tower Modules, compute that reads no tower output (a bottom MLP) runs while it is in flight, and
the wait sits right before the first use of an output. Exactness is checked by the sharded tests."""
from __future__ import annotations

import os

import dmt_compile
from conftest import ROOT
from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.lowering.lower import RankLayout, lower_for_rank

DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def _program(tower_module: str = "identity", compression=None):
    model, inputs = load_model_spec(DLRM)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module=tower_module, compression=compression)
    gm = lower_for_rank(dmt, RankLayout(2, 2, 0, 0, None, None, "intra", 0, 2)).gm
    return [n for n in gm.graph.nodes]


def test_output_exchange_overlaps_independent_compute():
    for tm, c in (("identity", None), ("linear", 4)):
        nodes = _program(tm, c)
        at = {n.target if n.op == "call_module" else n.name: i for i, n in enumerate(nodes)}
        start, wait = at["dist.outputs"], at["dist.outputs_wait"]
        bottom = [i for i, n in enumerate(nodes) if n.op == "call_module" and str(n.target).startswith("bottom_mlp")]
        tms = [i for i, n in enumerate(nodes) if n.op == "call_module" and str(n.target).endswith("_tm")]
        assert bottom and all(start < i < wait for i in bottom), (tm, start, bottom, wait)
        assert tms and max(tms) < start  # posted as soon as my host's Tower Module is done
        # nothing between the wait and the first consumer but the wait's getitems
        first_use = min(i for i, n in enumerate(nodes) if i > wait and n.target is not __import__("operator").getitem)
        users = {u for n in nodes[wait:first_use] for u in n.users}
        assert nodes[first_use] in users
