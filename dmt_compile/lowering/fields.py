"""What the lowering reads off a tower of the single-process graph: id fields, lookup calls, layouts.

* `tower_fields` — every id field the tower's lookups read (`rows`, `jagged` EmbeddingBag ids,
  or a torchrec `kjt`), once per tower and per lookup, in the order both sides of the exchange use.
* `lookup_call` — one original lookup as a `LookupCall` with its id arguments substituted.
* `row_wise_lookup` — how a lookup of a row-wise table reads its ids as bags.
* `collection_layout` / `payload_layout` — the KeyedTensor layout of collection lookups and payloads.
"""
from __future__ import annotations

import torch.fx as fx

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.ir.detection import Detection, Lookup
from dmt_compile.ir.graph import TowerNodes
from dmt_compile.ir.meta import DTYPE, SHAPE
from dmt_compile.runtime.exchanges import LookupCall
from dmt_compile.runtime.row_wise import RowWiseLookup, check_supported, row_starts
from dmt_compile.runtime.wire import IdField

__all__ = ["tower_fields", "lookup_call", "row_wise_lookup", "collection_layout", "payload_layout", "table_key"]


def table_key(table: str) -> str:
    """A table's parameter name as a module key."""
    return table.replace(".", "__")


def _meta_of(node: fx.Node) -> tuple[tuple, str]:
    return node.meta.get(SHAPE) or (), node.meta.get(DTYPE) or "int64"


def _collection_fields(src: fx.GraphModule, n: fx.Node, lk: Lookup, pos: list[int]) -> list[IdField]:
    module = src.get_submodule(n.target)
    if lk.kind == "ec":
        raise RuntimeSetupError(
            f"lookup {n.name} is a torchrec EmbeddingCollection (unpooled sequences); the distributed "
            "runtime exchanges pooled embeddings only", "run it single-process, or pool inside the model")
    keys = tuple(f for c in module.embedding_bag_configs() for f in c.feature_names)
    return [IdField("kjt", (pos[0],), keys=keys, weighted=bool(module.is_weighted()))]


def _tensor_fields(tn: TowerNodes, lk: Lookup, pos: list[int]) -> list[IdField]:
    fields: list[IdField] = []
    rest = pos
    if lk.is_bag and len(pos) >= 2 and len(_meta_of(tn.ids_items[pos[0]])[0]) == 1:
        weights = pos[2] if len(pos) > 2 else None
        fields.append(IdField("jagged", (pos[0], pos[1], weights), (), _meta_of(tn.ids_items[pos[0]])[1],
                              _meta_of(tn.ids_items[pos[1]])[1], lk.include_last_offset,
                              _meta_of(tn.ids_items[weights])[1] if weights is not None else None))
        rest = pos[3:]
    for k in rest:
        shape, dtype = _meta_of(tn.ids_items[k])
        fields.append(IdField("rows", (k,), tuple(shape[1:]), dtype))
    return fields


def tower_fields(src: fx.GraphModule, det: Detection, tn: TowerNodes) -> tuple[list[IdField], list[list[IdField]]]:
    """(every distinct field of the tower, the fields of each lookup) for a tower of the source graph."""
    position = {node: k for k, node in tn.ids_items.items()}
    all_fields: list[IdField] = []
    per_lookup: list[list[IdField]] = []
    for n in tn.lookups:
        lk = det.lookup_of(n)
        pos = [position[a] for a in lk.id_nodes(n)]
        fields = _collection_fields(src, n, lk, pos) if lk.is_collection else _tensor_fields(tn, lk, pos)
        per_lookup.append(fields)
        all_fields += [f for f in fields if f not in all_fields]
    return all_fields, per_lookup


def lookup_call(src: fx.GraphModule, n: fx.Node, position: dict[fx.Node, int]) -> LookupCall:
    """The lookup `n` as a module call on the ids at `position` (source graph id getitems -> position)."""
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
    weight = next(a for a in [*n.args, *n.kwargs.values()] if isinstance(a, fx.Node) and a.op == "get_attr")
    return LookupCall(None, n.target, args, kwargs, src.get_parameter(weight.target))


def row_wise_lookup(src: fx.GraphModule, n: fx.Node, lk: Lookup, fields: list[IdField], size: int) -> RowWiseLookup:
    """How lookup `n` of a table sharded by rows over `size` members reads its ids and rebuilds its output."""
    module = src.get_submodule(n.target) if n.op == "call_module" else None
    mode = lk.mode or "sum"
    check_supported(module, mode, lk.tables[0], n.kwargs)
    f = fields[0]
    if f.kind == "jagged":
        how, per_sample, positions, weights = "jagged", 1, f.positions[:2], f.positions[2]
    elif lk.is_bag:
        how, per_sample, positions, weights = "bag2d", 1, f.positions, None
    else:
        how, positions, weights = "ids", f.positions, None
        per_sample = 1
        for d in f.trailing:
            per_sample *= d
    return RowWiseLookup(table_key(lk.tables[0]), lk.dim, mode, how, positions, weights, f.include_last_offset,
                         per_sample, tuple(n.meta[SHAPE][1:]), tuple(row_starts(lk.rows, size)))


def collection_layout(src: fx.GraphModule, node: fx.Node):
    """(keys, length_per_key) when `node` is a torchrec EmbeddingBagCollection lookup (KeyedTensor out)."""
    if node.op != "call_module" or type(src.get_submodule(node.target)).__name__ != "EmbeddingBagCollection":
        return None
    configs = src.get_submodule(node.target).embedding_bag_configs()
    return (tuple(f for c in configs for f in c.feature_names),
            tuple(c.embedding_dim for c in configs for _ in c.feature_names))


def payload_layout(src: fx.GraphModule, tn: TowerNodes, payload: fx.Node):
    """The KeyedTensor layout of a payload that is an identity TM's pass-through of a collection lookup."""
    if payload.meta.get(DTYPE) != "KeyedTensor":
        return None
    tm, index = payload.args
    return collection_layout(src, tm.args[index]) if tm is tn.tm else None
