"""sptt-rewrite: regroup the lookups into towers with explicit boundary nodes.

For each tower t of the plan (lookups in original order):

    tower{t}_ids   = ids_exchange(t, *ids)            # every id tensor the tower's lookups read
    <lookup>       = table(getitem(tower{t}_ids, k))  # the original lookup nodes, ids rewired
    tower{t}_tm    = dmt.tower{t}_tm(*lookups)        # identity Tower Module (tower-modules swaps it)
    tower{t}_out   = outputs_exchange(t, *payload)
    tower{t}_out_k = getitem(tower{t}_out, k)         # replaces lookup k for every consumer

Id computation (slicing, casts, offsets) stays on the sample owner before the exchange; the
result is topologically re-sorted so each node sits as close to its old place as it can.
"""
from __future__ import annotations

import operator

import torch
import torch.fx as fx

from dmt_compile.ir.boundary import ids_exchange, outputs_exchange
from dmt_compile.errors import RewriteError
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.ir.graph import call_module, stable_toposort, tag
from dmt_compile.ir.lookups import classify_lookup
from dmt_compile.tower_modules import IdentityTowerModule

__all__ = ["SpttRewrite", "TOWER_ROOT"]

TOWER_ROOT = "dmt"


def _tower_module_path(t: int) -> str:
    return f"{TOWER_ROOT}.tower{t}_tm"


def _ensure_root(gm: fx.GraphModule) -> torch.nn.Module:
    if not hasattr(gm, TOWER_ROOT):
        gm.add_module(TOWER_ROOT, torch.nn.Module())
    return getattr(gm, TOWER_ROOT)


def _ancestors(node: fx.Node, stop: set[fx.Node]) -> set[fx.Node]:
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        for a in n.all_input_nodes:
            if a not in seen:
                seen.add(a)
                if a not in stop:
                    stack.append(a)
    return seen


class SpttRewrite(Pass):
    name = "sptt-rewrite"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        plan, det = ctx.plan, ctx.detection
        graph = gm.graph
        by_name = {n.name: n for n in graph.nodes}
        lookup_nodes = {lk.index: by_name[lk.node] for lk in det.lookups}
        all_lookups = set(lookup_nodes.values())
        position = {n: float(i) for i, n in enumerate(graph.nodes)}
        priority: dict[fx.Node, float] = {}
        output = next(n for n in graph.nodes if n.op == "output")
        _ensure_root(gm)
        for detail in plan.details:
            t = detail.index
            nodes = [lookup_nodes[i] for i in detail.lookups]
            kinds = [classify_lookup(gm, n) for n in nodes]
            for n, kind in zip(nodes, kinds):
                for id_node in kind.id_nodes(n):
                    if _ancestors(id_node, set()) & all_lookups:
                        raise RewriteError(
                            f"the ids of lookup {n.name} are computed from embedding lookups",
                            "dmt_compile needs ids that come from the model inputs; pin such features "
                            "to one tower is not enough — this model cannot be towered",
                        )
            id_inputs: list[fx.Node] = []
            for n, kind in zip(nodes, kinds):
                for id_node in kind.id_nodes(n):
                    if id_node not in id_inputs:
                        id_inputs.append(id_node)
            first = min(position[n] for n in nodes)
            last = max(position[n] for n in nodes)
            with graph.inserting_before(output):
                ex = tag(graph.call_function(ids_exchange, (t, *id_inputs), name=f"tower{t}_ids"),
                         self.name, tower=t, role="ids_exchange")
                moved = {}
                for k, id_node in enumerate(id_inputs):
                    moved[id_node] = tag(graph.call_function(operator.getitem, (ex, k), name=f"tower{t}_ids_{k}"),
                                         self.name, tower=t, role="ids_exchange")
                    priority[moved[id_node]] = first - 0.5 + k * 1e-6
                priority[ex] = first - 0.6
                for n, kind in zip(nodes, kinds):
                    for id_node in kind.id_nodes(n):
                        n.replace_input_with(id_node, moved[id_node])
                    tag(n, n.meta.get("dmt.from_pass", "capture"), tower=t, role="lookup")
                gm.get_submodule(TOWER_ROOT).add_module(f"tower{t}_tm", IdentityTowerModule(len(nodes)))
                tm = tag(call_module(graph, _tower_module_path(t), tuple(nodes), name=f"tower{t}_tm"),
                         self.name, tower=t, role="tower_module")
                payload = [
                    tag(graph.call_function(operator.getitem, (tm, k), name=f"tower{t}_payload_{k}"),
                        self.name, tower=t, role="tower_module")
                    for k in range(len(nodes))
                ]
                out = tag(graph.call_function(outputs_exchange, (t, *payload), name=f"tower{t}_out"),
                          self.name, tower=t, role="outputs_exchange")
                parts = [
                    tag(graph.call_function(operator.getitem, (out, k), name=f"tower{t}_out_{k}"),
                        self.name, tower=t, role="reassemble")
                    for k in range(len(nodes))
                ]
            for k, (n, part) in enumerate(zip(nodes, parts)):
                n.replace_all_uses_with(part, delete_user_cb=lambda user: user is not tm)
                priority[part] = last + 0.5 + k * 1e-6
            priority[tm] = last + 0.1
            for k, p in enumerate(payload):
                priority[p] = last + 0.2 + k * 1e-6
            priority[out] = last + 0.3
        stable_toposort(graph, priority)
        return PassResult(gm, True)

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        for n in gm.graph.nodes:
            if "dmt.lookup" in n.meta and n.meta.get("dmt.role") != "lookup":
                raise RewriteError(f"lookup {n.name} was left outside every tower", "report this as a bug")
