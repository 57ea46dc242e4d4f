"""lower: turn the single-process DMT graph into one rank's program (runtime, docs/DESIGN.md).

Reads the boundary nodes of `sptt-rewrite` and writes a new GraphModule for rank (h, l):

    dist_ids    = dist.ids(*[ids of tower t for every t])     # PeerIdsExchange (one collective)
    tower{t}_lk = dist.tower{t}_lookup(ids of t)              # TowerLookup, only for towers on host h
    <TM of t>                                                 # unchanged, only for towers on host h
    dist_out    = dist.outputs(*[payload of my towers])       # posts the output exchange (one collective)
    ...                                                       # compute that needs no tower output overlaps it
    wait        = dist.outputs_wait(dist_out)                 # right before the first use of an output

Lookups and Tower Modules of towers on other hosts are removed; their tables and TMs are not
referenced, so this rank holds no copy. Inside the host every table is owned by one rank
(table-wise, balanced by table size; lookups sharing a table share the owner) or sharded by rows.

`LowerForRank(layout)` is the pass (it needs `Detection` and `TowerPlan`, produces `Lowered`);
`lower_for_rank(dmt, layout)` runs it on a `DmtModel`. The program's exchanges need the process
group, so the pipeline does not re-propagate shapes after it (`propagates_shapes = False`).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
import torch.fx as fx

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.ir.boundary import BOUNDARY_OPS
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.graph import Placement, TowerNodes, call_module, copy_graph, erase_unused, get_attr_value, tag, \
    tower_nodes
from dmt_compile.ir.meta import DTYPE, SHAPE, Role
from dmt_compile.ir.module_paths import DIST_IDS, DIST_OUTPUTS, DIST_OUTPUTS_WAIT, tower_lookup, tower_module
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.lowering.fields import (collection_layout, lookup_call, payload_layout, row_wise_lookup,
                                         tower_fields)
from dmt_compile.lowering.owners import ROW_WISE, table_owners
from dmt_compile.passes.base import Pass, PassContext, PassPipeline, PassResult
from dmt_compile.runtime.exchanges import OutputsStart, OutputsWait, PeerIdsExchange, PeerOutputsExchange, TowerLookup
from dmt_compile.runtime.id_check import IdBound, IdRangeCheck
from dmt_compile.runtime.row_wise import RowShard

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["RankLayout", "Lowered", "LowerForRank", "lower_for_rank"]


@dataclass(frozen=True)
class RankLayout:
    """Where this rank sits and which groups it talks over."""

    num_hosts: int
    local_size: int
    host: int
    local: int
    peer_group: Any
    lookup_group: Any  # intra-host group (SPTT) or the world (flat baseline)
    lookup_label: str = "intra"
    lookup_index: int = 0  # my index in lookup_group
    lookup_size: int = 1
    hosts: tuple[int, ...] | None = None  # host of each lookup-group member (world groups: bytes split by host)
    row_wise: str = "auto"  # auto: a table larger than one rank's fair share is sharded by rows; never; always
    wire_dtype: str | None = None  # format of the embedding exchanges (runtime/wire_codec.py); None: exact


class LoweringSource(NamedTuple):
    """What lowering reads of a transformed model (a `DmtModel` has each)."""

    graph_module: fx.GraphModule
    plan: TowerPlan
    detection: Detection


@dataclass(frozen=True)
class Lowered:
    """One rank's program and its parameters by kind (the lists fill while the pass builds it)."""

    gm: fx.GraphModule
    embedding_params: list = field(default_factory=list)  # owned tables: no sync
    tower_params: list = field(default_factory=list)  # Tower Modules of my host: host-local sync
    dense_params: list = field(default_factory=list)  # everything else: world sync
    owners: dict = field(default_factory=dict)  # tower -> owner (lookup-group index, -1 = row-wise) per lookup
    row_shards: list = field(default_factory=list)  # (parameter, full table name, start row, stop row)


def _tower_lookup(dmt: LoweringSource, tn: TowerNodes, layout: RankLayout, lowered: Lowered) -> TowerLookup:
    """The TowerLookup module of one local tower (source-graph nodes in `tn`)."""
    src, det, t = dmt.graph_module, dmt.detection, tn.tower
    lookups = [det.lookup_of(n) for n in tn.lookups]
    _, per_lookup = tower_fields(src, det, tn)
    host_aware = layout.hosts if layout.lookup_label == "world" else None  # flat: balance hosts' NICs too
    owners = table_owners(lookups, layout.lookup_size, layout.row_wise, host_aware)
    lowered.owners[t] = owners
    position = {node: k for k, node in tn.ids_items.items()}
    calls = {k: lookup_call(src, n, position) for k, (n, o) in enumerate(zip(tn.lookups, owners))
             if o == layout.lookup_index}
    row_wise = {k: row_wise_lookup(src, n, lookups[k], per_lookup[k], layout.lookup_size)
                for k, (n, o) in enumerate(zip(tn.lookups, owners)) if o == ROW_WISE}
    shards: dict[str, RowShard] = {}
    for k, rw in row_wise.items():
        if rw.key not in shards:
            table = lookups[k].tables[0]
            start, stop = rw.starts[layout.lookup_index], rw.starts[layout.lookup_index + 1]
            shards[rw.key] = RowShard(src.get_parameter(table), start, stop, table)
            lowered.row_shards.append((shards[rw.key].weight, table, start, stop))
    shapes = [tuple(n.meta[SHAPE][1:]) for n in tn.lookups]
    return TowerLookup(t, per_lookup, owners, shapes, calls, layout.lookup_index, layout.lookup_size,
                       layout.lookup_group, layout.lookup_label, layout.hosts, row_wise, shards,
                       [collection_layout(src, n) for n in tn.lookups], emb_dtype=_one_dtype(tn.lookups),
                       wire_dtype=layout.wire_dtype)


def _one_dtype(nodes) -> torch.dtype:
    """The dtype values of `nodes` share (their exchange carries it exactly); float32 when they differ."""
    dtypes = {n.meta.get(DTYPE) for n in nodes} - {"KeyedTensor", None}
    return getattr(torch, dtypes.pop()) if len(dtypes) == 1 else torch.float32


def _exchanges(dmt: LoweringSource, src_towers: dict[int, TowerNodes], layout: RankLayout):
    src, order = dmt.graph_module, sorted(src_towers)
    tower_host = {d.index: d.host for d in dmt.plan.details}
    fields = {t: tower_fields(src, dmt.detection, src_towers[t])[0] for t in order}
    payload_shapes = {t: [tuple(p.meta[SHAPE][1:]) for p in src_towers[t].payload] for t in order}
    out_dtype = _one_dtype([p for t in order for p in src_towers[t].payload])
    keyed = {t: [payload_layout(src, src_towers[t], p) for p in src_towers[t].payload] for t in order}
    ids_mod = PeerIdsExchange(fields, tower_host, layout.host, layout.num_hosts, layout.peer_group,
                              id_check=_id_check(dmt, src_towers, order))
    out_mod = PeerOutputsExchange(ids_mod, payload_shapes, out_dtype, layout.peer_group, payload_keyed=keyed,
                                  wire_dtype=layout.wire_dtype)
    return ids_mod, OutputsStart(out_mod), OutputsWait(out_mod)


def _place_outputs(placement: Placement, graph: fx.Graph, towers: dict, mine: list[int], index: dict,
                   dist_out: fx.Node, wait: fx.Node, t_out: list[fx.Node]) -> None:
    """Post the output exchange right after my host's last Tower Module; compute that reads no
    tower output moves after it, and the wait goes right before the first use of an output."""
    order = sorted(towers)
    anchor = max((towers[t].out for t in mine), key=index.__getitem__)
    items = [u for t in order for u in towers[t].out.users]
    first_use = min((c for u in items for c in u.users), key=index.__getitem__, default=None)
    early = _independent(graph, towers, order, index[anchor])
    if first_use is None or index[first_use] <= index[anchor]:
        placement.after(anchor, dist_out, *early, wait, *t_out)
    else:
        placement.after(anchor, dist_out, *early)
        placement.before(first_use, wait, *t_out, *items)


def _independent(graph: fx.Graph, towers: dict, order: list[int], before: int) -> list[fx.Node]:
    """Nodes placed before the last tower boundary that neither feed a tower nor read its output
    (e.g. a bottom MLP): they move after the output exchange starts, to overlap its transfer."""
    needed: set[fx.Node] = set()
    stack = [n for t in order for n in (*towers[t].payload, towers[t].ids)]
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(n.all_input_nodes)
    after: set[fx.Node] = set()
    stack = [towers[t].out for t in order]
    while stack:
        n = stack.pop()
        if n not in after:
            after.add(n)
            stack.extend(n.users)
    return [n for i, n in enumerate(graph.nodes) if i < before and n not in needed and n not in after
            and n.op in ("call_module", "call_function", "call_method")]


def _id_check(dmt: LoweringSource, src_towers: dict[int, TowerNodes], order: list[int]) -> IdRangeCheck:
    """Table size and feature names of every tower's id fields, for the check before the id exchange."""
    bounds = {}
    for t in order:
        _, per_lookup = tower_fields(dmt.graph_module, dmt.detection, src_towers[t])
        lookups = [dmt.detection.lookup_of(n) for n in src_towers[t].lookups]
        bounds[t] = [IdBound(f, lk.rows, lk.features, lk.tables[0]) for fs, lk in zip(per_lookup, lookups)
                     for f in fs if f.kind != "rows" or "int" in f.dtype]  # not float per-sample weights
    return IdRangeCheck(bounds)


def _build(src: fx.GraphModule, graph: fx.Graph, modules: dict[str, Any]) -> fx.GraphModule:
    root: dict[str, Any] = dict(modules)
    for n in graph.nodes:
        if n.op in ("call_module", "get_attr") and n.target not in root:
            root[n.target] = src.get_submodule(n.target) if n.op == "call_module" else get_attr_value(src, n.target)
    gm = fx.GraphModule(root, graph, f"{type(src).__name__}Rank")
    gm.graph.lint()
    return gm


def _classify_parameters(gm: fx.GraphModule, local: list[int], lowered: Lowered) -> None:
    emb_ids = {id(p) for t in local for p in gm.get_submodule(tower_lookup(t)).parameters()}
    tm_ids = {id(p) for t in local for p in gm.get_submodule(tower_module(t)).parameters()}
    for _, p in sorted(gm.named_parameters(), key=lambda kv: kv[0]):
        kind = lowered.embedding_params if id(p) in emb_ids else lowered.tower_params if id(p) in tm_ids \
            else lowered.dense_params
        kind.append(p)


@dataclass(frozen=True)
class LowerForRank(Pass):
    """This rank's program: the tower boundaries lowered to the runtime's exchanges (module docstring)."""

    name: ClassVar[str] = "lower"
    needs: ClassVar[tuple[type, ...]] = (Detection, TowerPlan)
    produces: ClassVar[tuple[type, ...]] = (Lowered,)
    propagates_shapes: ClassVar[bool] = False
    layout: RankLayout | None = None

    def requires(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        if self.layout is None:
            raise RuntimeSetupError("lower needs the rank's layout", "build it as LowerForRank(layout=RankLayout(...))")
        if not tower_nodes(gm.graph):
            raise RuntimeSetupError("the graph has no tower boundaries to lower", "run sptt-rewrite first")

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        lowered = _lower(LoweringSource(gm, ctx.get(TowerPlan), ctx.get(Detection)), self.layout)
        return PassResult(lowered.gm, True, (lowered,))

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        left = [n.name for n in gm.graph.nodes if n.op == "call_function" and n.target in BOUNDARY_OPS]
        if left:
            raise RuntimeSetupError(f"lowering left tower boundaries {left}", "report this as a bug")


def lower_for_rank(dmt: DmtModel, layout: RankLayout) -> Lowered:
    """Run `LowerForRank(layout)` on a transformed model; its graph stays as it was."""
    ctx = PassContext(dmt.topology, dmt.input_spec, [], None, analyses={Detection: dmt.detection, TowerPlan: dmt.plan})
    PassPipeline([LowerForRank(layout)])(dmt.graph_module, ctx)
    return ctx.get(Lowered)


def _lower(dmt: LoweringSource, layout: RankLayout) -> Lowered:
    """The body of `LowerForRank`: one rank's program from the boundary nodes of `dmt`'s graph."""
    src: fx.GraphModule = dmt.graph_module
    graph, _ = copy_graph(src.graph)
    src_towers, towers = tower_nodes(src.graph), tower_nodes(graph)
    order = sorted(towers)
    local = [t for t in order if dmt.plan.details[t].host == layout.host]
    ids_mod, start_mod, wait_mod = _exchanges(dmt, src_towers, layout)
    modules: dict[str, Any] = {DIST_IDS: ids_mod, DIST_OUTPUTS: start_mod, DIST_OUTPUTS_WAIT: wait_mod}
    lowered = Lowered(gm=None)  # type: ignore[arg-type]
    placement = Placement(graph)
    output = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(output):
        dist_ids = tag(call_module(graph, DIST_IDS, tuple(list(towers[t].ids.args[1:]) for t in order),
                                   "dist_ids"), "lower", role=Role.IDS_EXCHANGE)
        dist_out = tag(call_module(graph, DIST_OUTPUTS, tuple(towers[t].payload for t in local), "dist_outputs"),
                       "lower", role=Role.OUTPUTS_EXCHANGE)
        wait = tag(call_module(graph, DIST_OUTPUTS_WAIT, (dist_out,), "dist_outputs_wait"), "lower",
                   role=Role.OUTPUTS_EXCHANGE)
        t_ids = [tag(graph.call_function(operator.getitem, (dist_ids, i), name=f"tower{t}_ids_in"), "lower", tower=t)
                 for i, t in enumerate(order)]
        t_out = [tag(graph.call_function(operator.getitem, (wait, i), name=f"tower{t}_out_in"), "lower", tower=t)
                 for i, t in enumerate(order)]
    index = {n: i for i, n in enumerate(graph.nodes)}
    placement.before(min((towers[t].ids for t in order), key=index.__getitem__), dist_ids, *t_ids)
    _place_outputs(placement, graph, towers, local or order, index, dist_out, wait, t_out)
    for i, t in enumerate(order):
        tn = towers[t]
        for user in list(tn.out.users):
            user.args = (t_out[i], user.args[1])
        if t in local:
            modules[tower_lookup(t)] = _tower_lookup(dmt, src_towers[t], layout, lowered)
            with graph.inserting_before(output):
                look = tag(call_module(graph, tower_lookup(t), (t_ids[i],), f"tower{t}_lookup"), "lower",
                           tower=t, role=Role.LOOKUP)
                items = [tag(graph.call_function(operator.getitem, (look, k), name=f"{n.name}_rows"), "lower",
                             tower=t, role=Role.LOOKUP) for k, n in enumerate(tn.lookups)]
            placement.after(max(tn.lookups, key=index.__getitem__), look, *items)
            for n, item in zip(tn.lookups, items):
                n.replace_all_uses_with(item)
        payload = tn.payload
        graph.erase_node(tn.out)
        dead = [*tn.lookups, *tn.ids_items.values(), tn.ids]
        if t not in local:  # another host runs this tower: drop its Tower Module and payload here
            dead = payload + [tn.tm] + dead
        stuck = erase_unused(graph, dead)
        if stuck:
            raise RuntimeSetupError(f"lowering left nodes that are still used: {[n.name for n in stuck]}",
                                    "report this as a bug")
    placement.apply()
    lowered = replace(lowered, gm=_build(src, graph, modules))
    _classify_parameters(lowered.gm, local, lowered)
    return lowered

