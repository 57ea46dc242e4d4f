"""lower: turn the single-process DMT graph into one rank's program (runtime, docs/DESIGN.md).

Reads the boundary nodes of `sptt-rewrite` and writes a new GraphModule for rank (h, l):

    dist_ids    = dist.ids(*[ids of tower t for every t])     # PeerIdsExchange (one collective)
    tower{t}_lk = dist.tower{t}_lookup(ids of t)              # TowerLookup, only for towers on host h
    <TM of t>                                                 # unchanged, only for towers on host h
    dist_out    = dist.outputs(*[payload of my towers])       # PeerOutputsExchange (one collective)

Lookups and Tower Modules of towers on other hosts are removed; their tables and TMs are not
referenced, so this rank holds no copy. Inside the host every table is owned by one rank
(table-wise, balanced by table size; lookups sharing a table share the owner).
"""
from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.ir.boundary import ids_exchange, outputs_exchange
from dmt_compile.errors import RuntimeSetupError
from dmt_compile.ir.graph import call_module, stable_toposort, tag
from dmt_compile.ir.lookups import classify_lookup
from dmt_compile.runtime.row_wise import RowShard, RowWiseLookup, check_supported, row_starts
from dmt_compile.runtime.exchanges import LookupCall, PeerIdsExchange, PeerOutputsExchange, TowerLookup
from dmt_compile.runtime.wire import IdField

__all__ = ["RankLayout", "Lowered", "lower_for_rank", "table_owners", "plan_fingerprint"]


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
    split: Any = None  # (host of each lookup-group member, my index) for world groups
    row_wise: str = "auto"  # auto: a table larger than one rank's fair share is sharded by rows; never; always


@dataclass
class Lowered:
    gm: fx.GraphModule
    embedding_params: list = field(default_factory=list)  # owned tables: no sync
    tower_params: list = field(default_factory=list)  # Tower Modules of my host: host-local sync
    dense_params: list = field(default_factory=list)  # everything else: world sync
    owners: dict = field(default_factory=dict)  # tower -> owner (lookup-group index, -1 = row-wise) per lookup
    row_shards: list = field(default_factory=list)  # (parameter, full table name, start row, stop row)


def _tower_nodes(graph: fx.Graph):
    towers: dict[int, dict[str, Any]] = {}
    for n in graph.nodes:
        t = n.meta.get("dmt.tower")
        if t is None:
            continue
        d = towers.setdefault(t, {"lookups": [], "ids_items": []})
        if n.op == "call_function" and n.target is ids_exchange:
            d["ids"] = n
        elif n.op == "call_function" and n.target is outputs_exchange:
            d["out"] = n
        elif n.meta.get("dmt.role") == "lookup":
            d["lookups"].append(n)
        elif n.op == "call_module" and n.meta.get("dmt.role") == "tower_module":
            d["tm"] = n
    for d in towers.values():
        d["ids_items"] = {u.args[1]: u for u in d["ids"].users}
    return towers


def table_owners(src: fx.GraphModule, lookups: list[fx.Node], size: int, row_wise: str = "auto") -> list[int]:
    """Owner index (0..size-1) per lookup, or -1 for a table sharded row-wise over all members.

    Table-wise: largest tables first on the least-loaded member; lookups sharing a table share
    the owner. Row-wise ("auto"): a table larger than one member's fair share of the tower's
    table bytes (and with at least `size` rows) is split by rows instead; "always"/"never" force it.
    """
    tables: dict[str, tuple[int, int]] = {}
    collections = set()  # torchrec sub-collections: table-wise only
    for n in lookups:
        kind = classify_lookup(src, n)
        tables.setdefault(kind.tables[0], (kind.rows * kind.dim, kind.rows))
        if kind.kind in ("ebc", "ec"):
            collections.add(kind.tables[0])
    total = sum(e for e, _ in tables.values())
    by_rows = set()
    if size > 1 and row_wise != "never":
        by_rows = {t for t, (elems, rows) in tables.items() if t not in collections
                   and rows >= size and (row_wise == "always" or elems > total / size)}
    load = [0] * size
    owner_of: dict[str, int] = {t: -1 for t in by_rows}
    for name, (elems, _) in sorted(tables.items(), key=lambda kv: (-kv[1][0], kv[0])):
        if name in by_rows:
            continue
        j = min(range(size), key=lambda i: (load[i], i))
        owner_of[name] = j
        load[j] += elems
    return [owner_of[classify_lookup(src, n).tables[0]] for n in lookups]


def _row_wise_lookup(src: fx.GraphModule, n: fx.Node, fields: list[IdField], size: int) -> RowWiseLookup:
    kind = classify_lookup(src, n)
    module = src.get_submodule(n.target) if n.op == "call_module" else None
    if isinstance(module, torch.nn.EmbeddingBag):
        mode = module.mode
    elif module is not None or n.target is torch.nn.functional.embedding:
        mode = "sum"
    else:
        mode = n.kwargs.get("mode", n.args[6] if len(n.args) > 6 else "mean")
    check_supported(module, mode, kind.tables[0], n.kwargs)
    f = fields[0]
    shape = tuple(n.meta["dmt.shape"][1:])
    if f.kind == "jagged":
        how, per_sample, positions, weights = "jagged", 1, f.positions[:2], f.positions[2]
    elif kind.kind in ("embedding_bag", "functional_embedding_bag"):
        how, per_sample, positions, weights = "bag2d", 1, f.positions, None
    else:
        how, positions, weights = "ids", f.positions, None
        per_sample = 1
        for d in f.trailing:
            per_sample *= d
    return RowWiseLookup(_key(kind.tables[0]), kind.dim, mode, how, positions, weights, f.include_last_offset,
                         per_sample, shape, tuple(row_starts(kind.rows, size)))


def _collection_layout(src: fx.GraphModule, node: fx.Node):
    """(keys, length_per_key) when `node` is a torchrec EmbeddingBagCollection lookup (KeyedTensor out)."""
    if node.op != "call_module" or type(src.get_submodule(node.target)).__name__ != "EmbeddingBagCollection":
        return None
    configs = src.get_submodule(node.target).embedding_bag_configs()
    return (tuple(f for c in configs for f in c.feature_names),
            tuple(c.embedding_dim for c in configs for _ in c.feature_names))


def _keyed_layout(src: fx.GraphModule, tower: dict, payload: fx.Node):
    """The KeyedTensor layout of a payload that is an identity TM's pass-through of a collection lookup."""
    if payload.meta.get("dmt.dtype") != "KeyedTensor":
        return None
    tm, index = payload.args
    return _collection_layout(src, tm.args[index]) if tm is tower.get("tm") else None


def _key(table: str) -> str:
    return table.replace(".", "__")


def _table_weight(src: fx.GraphModule, table: str) -> torch.Tensor:
    return src.get_parameter(table)


def _fields(src: fx.GraphModule, tower: dict) -> tuple[list[IdField], list[list[IdField]]]:
    position = {node: k for k, node in tower["ids_items"].items()}
    all_fields: list[IdField] = []
    per_lookup: list[list[IdField]] = []

    def meta_of(k: int):
        node = tower["ids_items"][k]
        return node.meta.get("dmt.shape") or (), node.meta.get("dmt.dtype") or "int64"

    for n in tower["lookups"]:
        kind = classify_lookup(src, n)
        pos = [position[a] for a in kind.id_nodes(n)]
        fields: list[IdField] = []
        if kind.kind in ("ebc", "ec"):  # a torchrec collection reads one KeyedJaggedTensor
            module = src.get_submodule(n.target)
            configs = module.embedding_bag_configs() if kind.kind == "ebc" else module.embedding_configs()
            if kind.kind == "ec":
                raise RuntimeSetupError(
                    f"lookup {n.name} is a torchrec EmbeddingCollection (unpooled sequences); the distributed "
                    "runtime exchanges pooled embeddings only", "run it single-process, or pool inside the model")
            weighted = bool(module.is_weighted())
            keys = tuple(f for c in configs for f in c.feature_names)
            fields.append(IdField("kjt", (pos[0],), keys=keys, weighted=weighted))
            per_lookup.append(fields)
            all_fields += [f for f in fields if f not in all_fields]
            continue
        bag = kind.kind in ("embedding_bag", "functional_embedding_bag")
        if bag and len(pos) >= 2 and len(meta_of(pos[0])[0]) == 1:
            if n.op == "call_module":
                last = bool(src.get_submodule(n.target).include_last_offset)
            else:
                last = bool(n.kwargs.get("include_last_offset", False))
            weights = pos[2] if len(pos) > 2 else None
            fields.append(IdField("jagged", (pos[0], pos[1], weights), (), meta_of(pos[0])[1], meta_of(pos[1])[1],
                                  last, meta_of(weights)[1] if weights is not None else None))
            rest = pos[3:]
        else:
            rest = pos
        for k in rest:
            shape, dtype = meta_of(k)
            fields.append(IdField("rows", (k,), tuple(shape[1:]), dtype))
        per_lookup.append(fields)
        for f in fields:
            if f not in all_fields:
                all_fields.append(f)
    return all_fields, per_lookup


def _lookup_call(src: fx.GraphModule, n: fx.Node, position: dict) -> LookupCall:
    def template(a):
        if isinstance(a, fx.Node):
            if a in position:
                return ("id", position[a])
            if a.op == "get_attr":
                return ("weight",)
            raise RuntimeSetupError(f"lookup {n.name} has a computed non-id argument {a.name}",
                                    "report this model; lookups may only take ids and constants")
        return a

    args = [template(a) for a in n.args]
    kwargs = {k: template(v) for k, v in n.kwargs.items()}
    if n.op == "call_module":
        return LookupCall(src.get_submodule(n.target), None, args, kwargs)
    weight_node = next(a for a in list(n.args) + list(n.kwargs.values()) if isinstance(a, fx.Node) and a.op == "get_attr")
    weight = src.get_parameter(weight_node.target)
    return LookupCall(None, n.target, args, kwargs, weight)


def plan_fingerprint(dmt: Any, layout_kind: str) -> str:
    text = "\n".join([layout_kind, str(dmt.topology), dmt.plan.to_json(), dmt.graph_module.code])
    return hashlib.sha256(text.encode()).hexdigest()


def lower_for_rank(dmt: Any, layout: RankLayout) -> Lowered:
    src: fx.GraphModule = dmt.graph_module
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    graph.output(graph.graph_copy(src.graph, env))
    for old, new in env.items():
        new.meta = dict(old.meta)
    towers = _tower_nodes(graph)
    order = sorted(towers)
    tower_host = {d.index: d.host for d in dmt.plan.details}
    local = [t for t in order if tower_host[t] == layout.host]
    position = {n: float(i) for i, n in enumerate(graph.nodes)}
    fields, per_lookup, owners, payload_shapes = {}, {}, {}, {}
    for t in order:
        fields[t], per_lookup[t] = _fields(src, towers[t])
        payload_shapes[t] = [tuple(p.meta["dmt.shape"][1:]) for p in towers[t]["out"].args[1:]]
    modules: dict[str, Any] = {}
    ids_mod = PeerIdsExchange(fields, tower_host, layout.host, layout.num_hosts, layout.peer_group)
    dtypes = {p.meta.get("dmt.dtype") for t in order for p in towers[t]["out"].args[1:]} - {"KeyedTensor"}
    out_dtype = getattr(torch, dtypes.pop()) if len(dtypes) == 1 else torch.float32
    payload_keyed = {t: [_keyed_layout(src, towers[t], p) for p in towers[t]["out"].args[1:]] for t in order}
    out_mod = PeerOutputsExchange(ids_mod, payload_shapes, out_dtype, layout.peer_group, payload_keyed=payload_keyed)
    modules["dist.ids"], modules["dist.outputs"] = ids_mod, out_mod
    lowered = Lowered(gm=None)  # type: ignore[arg-type]
    output = next(n for n in graph.nodes if n.op == "output")
    with graph.inserting_before(output):
        dist_ids = tag(call_module(graph, "dist.ids", tuple(list(towers[t]["ids"].args[1:]) for t in order),
                                   "dist_ids"), "lower", role="ids_exchange")
        payloads = tuple(list(towers[t]["out"].args[1:]) for t in local)
        dist_out = tag(call_module(graph, "dist.outputs", payloads, "dist_outputs"), "lower", role="outputs_exchange")
    priority = {dist_ids: min(position[towers[t]["ids"]] for t in order) - 0.5,
                dist_out: max(position[towers[t]["out"]] for t in order) + 0.5}
    for i, t in enumerate(order):
        d = towers[t]
        with graph.inserting_before(output):
            t_ids = tag(graph.call_function(operator.getitem, (dist_ids, i), name=f"tower{t}_ids_in"), "lower", tower=t)
            t_out = tag(graph.call_function(operator.getitem, (dist_out, i), name=f"tower{t}_out_in"), "lower", tower=t)
        priority[t_ids] = priority[dist_ids] + 0.01 * (i + 1)
        priority[t_out] = priority[dist_out] + 0.01 * (i + 1)
        for user in list(d["out"].users):
            user.args = (t_out, user.args[1])
        src_lookups = [_src_node(env, n) for n in d["lookups"]]
        if t in local:
            owners[t] = table_owners(src, src_lookups, layout.lookup_size, layout.row_wise)
            pos_of = {env_inv: k for k, env_inv in _src_ids_items(env, d).items()}
            calls = {k: _lookup_call(src, s, pos_of) for k, (s, o) in enumerate(zip(src_lookups, owners[t]))
                     if o == layout.lookup_index}
            row_wise = {k: _row_wise_lookup(src, s, per_lookup[t][k], layout.lookup_size)
                        for k, (s, o) in enumerate(zip(src_lookups, owners[t])) if o == -1}
            shards = {}
            for k, rw in row_wise.items():
                if rw.key not in shards:
                    table = classify_lookup(src, src_lookups[k]).tables[0]
                    start, stop = rw.starts[layout.lookup_index], rw.starts[layout.lookup_index + 1]
                    shards[rw.key] = RowShard(_table_weight(src, table), start, stop, table)
                    lowered.row_shards.append((shards[rw.key].weight, table, start, stop))
            shapes = [tuple(n.meta["dmt.shape"][1:]) for n in d["lookups"]]
            modules[f"dist.tower{t}_lookup"] = TowerLookup(t, per_lookup[t], owners[t], shapes, calls,
                                                           layout.lookup_index, layout.lookup_size,
                                                           layout.lookup_group, layout.lookup_label, layout.split,
                                                           row_wise, shards,
                                                           [_collection_layout(src, s) for s in src_lookups])
            with graph.inserting_before(output):
                look = tag(call_module(graph, f"dist.tower{t}_lookup", (t_ids,), f"tower{t}_lookup"), "lower",
                           tower=t, role="lookup")
            priority[look] = max(position[n] for n in d["lookups"])
            for k, n in enumerate(d["lookups"]):
                with graph.inserting_before(output):
                    item = tag(graph.call_function(operator.getitem, (look, k), name=f"{n.name}_rows"), "lower",
                               tower=t, role="lookup")
                priority[item] = priority[look] + 0.001 * (k + 1)
                n.replace_all_uses_with(item)
        payload = list(d["out"].args[1:])
        graph.erase_node(d["out"])
        dead = [*d["lookups"], *d["ids_items"].values(), d["ids"]]
        if t not in local:  # another host runs this tower: drop its Tower Module and payload here
            dead = payload + [d["tm"]] + dead
        _erase_unused(graph, dead)
    stable_toposort(graph, priority)
    root: dict[str, Any] = dict(modules)
    for n in graph.nodes:
        if n.op in ("call_module", "get_attr") and n.target not in root:
            root[n.target] = src.get_submodule(n.target) if n.op == "call_module" else _get_attr(src, n.target)
    gm = fx.GraphModule(root, graph, f"{type(src).__name__}Rank")
    gm.graph.lint()
    lowered.gm = gm
    lowered.owners = owners
    emb_ids = {id(p) for t in local for p in modules[f"dist.tower{t}_lookup"].parameters()}
    tm_ids = {id(p) for t in local for p in gm.get_submodule(f"dmt.tower{t}_tm").parameters()}
    for name, p in sorted(gm.named_parameters(), key=lambda kv: kv[0]):
        if id(p) in emb_ids:
            lowered.embedding_params.append(p)
        elif id(p) in tm_ids:
            lowered.tower_params.append(p)
        else:
            lowered.dense_params.append(p)
    return lowered


def _erase_unused(graph: fx.Graph, candidates: list[fx.Node]) -> None:
    """Erase the candidates (and get_attr weights they leave unused) as soon as nothing uses them."""
    pending = list(dict.fromkeys(candidates))
    changed = True
    while changed:
        changed = False
        for n in list(pending):
            if n.users:
                continue
            weights = [a for a in n.all_input_nodes if a.op == "get_attr"]
            graph.erase_node(n)
            pending.remove(n)
            pending += [w for w in weights if w not in pending]
            changed = True
    stuck = [n.name for n in pending if n.op != "get_attr"]
    if stuck:
        raise RuntimeSetupError(f"lowering left nodes that are still used: {stuck}", "report this as a bug")


def _get_attr(src: fx.GraphModule, target: str):
    obj: Any = src
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


def _src_node(env: dict, node: fx.Node) -> fx.Node:
    for old, new in env.items():
        if new is node:
            return old
    raise KeyError(node.name)


def _src_ids_items(env: dict, tower: dict) -> dict[int, fx.Node]:
    """position -> source-graph node of the tower's id getitems."""
    inverse = {new: old for old, new in env.items()}
    return {k: inverse[n] for k, n in tower["ids_items"].items()}
