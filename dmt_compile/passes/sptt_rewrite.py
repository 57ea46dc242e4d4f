"""sptt-rewrite: regroup the lookups into towers with explicit boundary nodes.

For each tower t of the plan (lookups in plan order):

    tower{t}_ids   = ids_exchange(t, *ids)            # every id tensor the tower's lookups read
    <lookup>       = table(getitem(tower{t}_ids, k))  # the original lookup nodes, ids rewired
    tower{t}_tm    = dmt.tower{t}_tm(*lookups)        # identity Tower Module (insert-tower-modules swaps it)
    tower{t}_out   = outputs_exchange(t, *payload)
    tower{t}_out_k = getitem(tower{t}_out, k)         # replaces lookup k for every consumer

Id computation (slicing, casts, offsets) stays on the sample owner before the exchange. The
boundary nodes are placed next to the tower's first / last lookup and the graph is re-sorted
topologically (`ir.graph.Placement`).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import RewriteError
from dmt_compile.ir.boundary import ids_exchange, outputs_exchange
from dmt_compile.ir.detection import Detection, Lookup
from dmt_compile.ir.graph import Placement, call_module, tag
from dmt_compile.ir.meta import FROM_PASS, LOOKUP, ROLE, SHAPE, Role
from dmt_compile.ir.module_paths import added_root, tower_module
from dmt_compile.ir.plan import TowerDetail, TowerPlan
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.tower_modules import IdentityTowerModule

__all__ = ["SpttRewrite"]


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen, stack = set(), [node]
    while stack:
        for a in stack.pop().all_input_nodes:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen


def _id_inputs(nodes: list[fx.Node], lookups: list[Lookup], all_lookups: set[fx.Node]) -> list[fx.Node]:
    """Every distinct id tensor the tower's lookups read, in order; ids must not come from lookups."""
    out: list[fx.Node] = []
    for n, lk in zip(nodes, lookups):
        for id_node in lk.id_nodes(n):
            if _ancestors(id_node) & all_lookups:
                raise RewriteError(f"the ids of lookup {n.name} are computed from embedding lookups",
                                   "dmt_compile needs ids that come from the model inputs; this model cannot be towered")
            if id_node not in out:
                out.append(id_node)
    return out


_ID_SHAPED = ("embedding", "functional_embedding")  # lookups whose output is [*ids.shape, dim]


def _leading_dim(d: Any, ids: fx.Node) -> bool:
    rank = len(ids.meta.get(SHAPE) or ())
    return isinstance(d, int) and rank > 0 and 0 <= (d + rank + 1 if d < 0 else d) < rank


def _shape_reads_from_ids(det: Detection, by_name: dict[str, fx.Node]) -> None:
    """`emb.size(1)` of a lookup's output (the history length, `np.arange(seq.size(1))` for positions) reads a
    dim the output shares with its ids, and `emb.device` the device of its ids: read them off the ids, so ids
    computed from them (a position lookup's) no longer count as computed from that lookup."""
    for lk in det.lookups:
        node = by_name[lk.node]
        ids = lk.id_nodes(node)
        if lk.kind not in _ID_SHAPED or len(ids) != 1:
            continue
        for user in list(node.users):
            if user.op == "call_method" and user.target == "size" and len(user.args) == 2 \
                    or user.op == "call_function" and user.target is torch.ops.aten.sym_size.int:
                if _leading_dim(user.args[1], ids[0]):
                    user.replace_input_with(node, ids[0])
            elif user.op == "call_function" and user.target is getattr and user.args[1:] == ("device",):
                user.replace_input_with(node, ids[0])  # `.to(seq.device)`: where the sample's ids are
            elif (user.op == "call_function" and user.target is getattr and user.args[1:] == ("shape",)
                  or user.op == "call_method" and user.target == "size" and len(user.args) == 1 and not user.kwargs) \
                    and user.users and all(u.op == "call_function" and u.target is operator.getitem
                                           and _leading_dim(u.args[1], ids[0]) for u in user.users):
                user.replace_input_with(node, ids[0])


@dataclass(frozen=True)
class SpttRewrite(Pass):
    name = "sptt-rewrite"
    needs = (Detection, TowerPlan)

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        plan, det = ctx.get(TowerPlan), ctx.get(Detection)
        by_name = {n.name: n for n in gm.graph.nodes}
        all_lookups = {by_name[lk.node] for lk in det.lookups}
        _shape_reads_from_ids(det, by_name)
        placement = Placement(gm.graph)
        added_root(gm)
        for detail in plan.details:
            self._tower(gm, detail, det, by_name, all_lookups, placement)
        placement.apply()
        return PassResult(gm, True)

    def _tower(self, gm: fx.GraphModule, detail: TowerDetail, det: Detection, by_name: dict[str, fx.Node],
               all_lookups: set[fx.Node], placement: Placement) -> None:
        t, graph = detail.index, gm.graph
        lookups = [det.lookups[i] for i in detail.lookups]
        nodes = [by_name[lk.node] for lk in lookups]
        id_inputs = _id_inputs(nodes, lookups, all_lookups)
        output = next(n for n in graph.nodes if n.op == "output")
        with graph.inserting_before(output):
            ex = tag(graph.call_function(ids_exchange, (t, *id_inputs), name=f"tower{t}_ids"),
                     self.name, tower=t, role=Role.IDS_EXCHANGE)
            moved = {id_node: tag(graph.call_function(operator.getitem, (ex, k), name=f"tower{t}_ids_{k}"),
                                  self.name, tower=t, role=Role.IDS_EXCHANGE)
                     for k, id_node in enumerate(id_inputs)}
            for n, lk in zip(nodes, lookups):
                for id_node in lk.id_nodes(n):
                    n.replace_input_with(id_node, moved[id_node])
                tag(n, n.meta.get(FROM_PASS, "capture"), tower=t, role=Role.LOOKUP)
            gm.add_submodule(tower_module(t), IdentityTowerModule(len(nodes)))
            tm = tag(call_module(graph, tower_module(t), tuple(nodes), name=f"tower{t}_tm"),
                     self.name, tower=t, role=Role.TOWER_MODULE)
            payload = [tag(graph.call_function(operator.getitem, (tm, k), name=f"tower{t}_payload_{k}"),
                           self.name, tower=t, role=Role.TOWER_MODULE) for k in range(len(nodes))]
            out = tag(graph.call_function(outputs_exchange, (t, *payload), name=f"tower{t}_out"),
                      self.name, tower=t, role=Role.OUTPUTS_EXCHANGE)
            parts = [tag(graph.call_function(operator.getitem, (out, k), name=f"tower{t}_out_{k}"),
                         self.name, tower=t, role=Role.REASSEMBLE) for k in range(len(nodes))]
        for n, part in zip(nodes, parts):
            n.replace_all_uses_with(part, delete_user_cb=lambda user: user is not tm)
        order = {n: i for i, n in enumerate(graph.nodes)}
        placement.before(min(nodes, key=order.__getitem__), ex, *moved.values())
        placement.after(max(nodes, key=order.__getitem__), tm, *payload, out, *parts)

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        for n in gm.graph.nodes:
            if LOOKUP in n.meta and n.meta.get(ROLE) != Role.LOOKUP:
                raise RewriteError(f"lookup {n.name} was left outside every tower", "report this as a bug")
