"""A transformed torchrec model's plan as TorchRec's own objects.

* `to_torchrec_towers(dmt)` -> `(EmbeddingTowerCollection, {table: ParameterSharding}, TowerExport)`:
  one `EmbeddingTower` per plan tower, holding a new `EmbeddingBagCollection` with the tower's tables
  (configs and weights copied) and, as its interaction, the plan's Tower Module (compressing) or
  `PooledValues` (identity); the sharding plan puts every table of tower t TABLE_ROW_WISE on the ranks
  of t's host, the only kinds TorchRec's tower sharder accepts.
* `ebc_sharding_plan(dmt, model)` -> a `ShardingPlan` for the *original* model: each table on the
  ranks of its tower's host (table-wise or table-row-wise), other tables data-parallel. TorchRec's
  DistributedModelParallel runs it on CPU unchanged; it reproduces the placement, with TorchRec's
  flat data flow (one global id all-to-all, no Tower-Module compression).

Tables are found through the transformed model's state names (`DmtModel.state_names`): a plan table
`dmt.<ebc>_<table>.embedding_bags.<table>.weight` is the original `<ebc fqn>.embedding_bags.<table>.weight`.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn

from dmt_compile.errors import InputError
from dmt_compile.ir.module_paths import tower_module

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["TableRef", "TowerExport", "PooledValues", "TowerModuleInteraction", "TowerModel", "resolve_tables",
           "to_torchrec_towers", "tower_sharding_plan", "ebc_sharding_plan"]

_MARK = ".embedding_bags."


@dataclass(frozen=True)
class TableRef:
    tower: int
    host: int
    source: str  # FQN of the EmbeddingBagCollection in the original model
    table: str  # table name in that collection
    tower_table: str  # its name inside the tower's collection (renamed only on a clash)
    config: Any  # torchrec EmbeddingBagConfig
    weight: torch.Tensor
    weighted: bool


@dataclass
class TowerExport:
    tables: list[list[TableRef]]
    hosts: list[int]  # host of each logical tower
    tower_keys: list[list[str]]  # KeyedTensor keys of each tower's collection
    key_to_source: dict[tuple[int, str], tuple[str, str]]  # (tower, key) -> (source EBC FQN, original key)
    widths: list[int]  # output width of each tower
    tower_module: str
    notes: list[str] = field(default_factory=list)


class PooledValues(nn.Module):
    """Identity Tower Module as a TorchRec interaction: KeyedTensor -> its values `[B, sum(dims)]`.

    Its one parameter (1.0, an exact multiply) exists because TorchRec wraps every interaction in
    DistributedDataParallel, which refuses a module without trainable parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.one = nn.Parameter(torch.ones(()))

    def forward(self, kt: Any) -> torch.Tensor:
        return kt.values() * self.one


class TowerModuleInteraction(nn.Module):
    """A compressing Tower Module behind TorchRec's interaction interface (KeyedTensor -> `[B, width]`).

    `arg_keys[i]` are the keys whose pooled embeddings form the Tower Module's input i.
    """

    def __init__(self, tm: nn.Module, arg_keys: Sequence[Sequence[str]]):
        super().__init__()
        self.tm = tm
        self.arg_keys = [list(k) for k in arg_keys]

    def forward(self, kt: Any) -> torch.Tensor:
        d = kt.to_dict()
        xs = [torch.cat([d[k] for k in keys], dim=1) if len(keys) > 1 else d[keys[0]] for keys in self.arg_keys]
        out = self.tm(*xs)
        out = out if isinstance(out, (tuple, list)) else (out,)
        vals = [o.values() if type(o).__name__ == "KeyedTensor" else o for o in out]
        return torch.cat([v.reshape(v.shape[0], -1) for v in vals], dim=1)


class TowerModel(nn.Module):
    """A root for DistributedModelParallel: the plan's FQN of the collection is `"etc"`."""

    def __init__(self, etc: nn.Module):
        super().__init__()
        self.etc = etc

    def forward(self, features: Any) -> torch.Tensor:
        return self.etc(features)


def _original_key(dmt: DmtModel, path: str) -> str:
    names = dmt.state_names
    for key in names.keys:
        if names.path.get(key) == path or path in names.aliases.get(key, ()):
            return key
    return path


def resolve_tables(dmt: DmtModel) -> list[list[TableRef]]:
    """The TorchRec tables of every plan tower (config, weight, source collection), in plan order."""
    gm = dmt.graph_module
    towers, used = [], {}
    for d in dmt.plan.details:
        refs = []
        for path in d.tables:
            key = _original_key(dmt, path)
            owner = gm.get_submodule(path.rpartition(_MARK)[0]) if _MARK in path else None
            if owner is None or type(owner).__name__ != "EmbeddingBagCollection" or _MARK not in key:
                raise InputError(f"tower {d.index}: table {key!r} is not a torchrec EmbeddingBagCollection table",
                                 "export torchrec models only (EmbeddingTower holds EmbeddingBagCollections)")
            source, _, rest = key.rpartition(_MARK)
            table = rest.rpartition(".weight")[0]
            config = next(c for c in owner.embedding_bag_configs() if c.name == table)
            name = table if used.get(table, (source, table)) == (source, table) else f"{source}__{table}".replace(
                ".", "_")
            used[name] = (source, table)
            refs.append(TableRef(d.index, d.host, source, table, name, config, gm.get_parameter(path),
                                 bool(owner.is_weighted())))
        towers.append(refs)
    return towers


def _names_by_table(configs: Sequence[Any]) -> list[list[str]]:
    from torchrec.modules.embedding_modules import get_embedding_names_by_table

    return get_embedding_names_by_table(list(configs))


def _tm_arg_keys(dmt: DmtModel, t: int, refs: list[TableRef], names: dict[tuple[str, str], str]) -> list[list[str]]:
    gm = dmt.graph_module
    node = next(n for n in gm.graph.nodes if n.op == "call_module" and n.target == tower_module(t))
    by_weight = {id(r.weight): r for r in refs}
    out = []
    for a in node.args:
        sub = gm.get_submodule(a.target) if getattr(a, "op", None) == "call_module" else None
        if sub is None or type(sub).__name__ != "EmbeddingBagCollection":
            raise InputError(f"tower {t}: an input of its Tower Module is not a collection lookup",
                             "export models whose towers hold torchrec EmbeddingBagCollection lookups only")
        out.append([names[(by_weight[id(sub.embedding_bags[c.name].weight)].tower_table, f)]
                    for c in sub.embedding_bag_configs() for f in c.feature_names])
    return out


def _source_keys(dmt: DmtModel, r: TableRef) -> dict[tuple[str, str], str]:
    configs = dmt.graph_module.get_submodule(r.source).embedding_bag_configs()
    return {(c.name, f): n for c, nm in zip(configs, _names_by_table(configs)) for f, n in zip(c.feature_names, nm)}


def _tower(dmt: DmtModel, t: int, refs: list[TableRef], export: TowerExport) -> Any:
    """One EmbeddingTower; records its keys, their sources and its width in `export`."""
    from torchrec.modules.embedding_modules import EmbeddingBagCollection
    from torchrec.modules.embedding_tower import EmbeddingTower

    weighted = {r.weighted for r in refs}
    if len(weighted) != 1:
        raise InputError(f"tower {t} mixes weighted and unweighted tables; one EmbeddingTower takes one collection",
                         "pin weighted and unweighted features to different towers")
    configs = [dataclasses.replace(r.config, name=r.tower_table) for r in refs]
    ebc = EmbeddingBagCollection(tables=configs, is_weighted=weighted.pop(), device=torch.device("cpu"))
    with torch.no_grad():
        for r in refs:
            ebc.embedding_bags[r.tower_table].weight.copy_(r.weight.detach())
    names = {(r.tower_table, f): n for r, c, nm in zip(refs, configs, _names_by_table(configs))
             for f, n in zip(c.feature_names, nm)}
    for r in refs:
        source = _source_keys(dmt, r)
        for f in r.config.feature_names:
            export.key_to_source[(t, names[(r.tower_table, f)])] = (r.source, source.get((r.table, f), f))
    export.tower_keys.append([n for nm in _names_by_table(configs) for n in nm])
    if dmt.plan.tower_module == "identity":
        interaction = PooledValues()
        export.widths.append(sum(c.embedding_dim * len(c.feature_names) for c in configs))
    else:
        tm = copy.deepcopy(dmt.graph_module.get_submodule(tower_module(t)))
        interaction = TowerModuleInteraction(tm, _tm_arg_keys(dmt, t, refs, names))
        export.widths.append(dmt.plan.details[t].width_out)
    return EmbeddingTower(ebc, interaction)


def to_torchrec_towers(dmt: DmtModel, *, world_size: int | None = None, local_size: int | None = None):
    """(EmbeddingTowerCollection, its {table: ParameterSharding}, TowerExport) for `dmt`'s plan (module docstring)."""
    from torchrec.modules.embedding_tower import EmbeddingTowerCollection

    tables = resolve_tables(dmt)
    export = TowerExport(tables, [d.host for d in dmt.plan.details], [], {}, [], dmt.plan.tower_module)
    towers = [_tower(dmt, t, refs, export) for t, refs in enumerate(tables)]
    etc = EmbeddingTowerCollection(towers, device=torch.device("cpu"))
    topo = dmt.topology
    plan = tower_sharding_plan(etc, export, world_size=world_size or topo.world_size,
                               local_size=local_size or topo.local_size)
    return etc, plan, export


def tower_sharding_plan(etc: nn.Module, export: TowerExport, *, world_size: int, local_size: int) -> Any:
    """{table: ParameterSharding} for the collection: TABLE_ROW_WISE on the ranks of each tower's host."""
    from torchrec.distributed.embedding_tower_sharding import EmbeddingTowerCollectionSharder
    from torchrec.distributed.sharding_plan import construct_module_sharding_plan, table_row_wise

    hosts = world_size // local_size
    per = {r.tower_table: table_row_wise(host_index=export.hosts[t] % hosts)
           for t, refs in enumerate(export.tables) for r in refs}
    return construct_module_sharding_plan(etc, per, sharder=EmbeddingTowerCollectionSharder(),
                                          local_size=local_size, world_size=world_size, device_type="cpu")


def ebc_sharding_plan(dmt: DmtModel, model: nn.Module, *, sharding: str = "table_wise",
                      world_size: int | None = None, local_size: int | None = None) -> Any:
    """A ShardingPlan for the original `model`: each table on its tower's host (module docstring).

    `sharding`: "table_wise" (tables of a host spread over its ranks) or "table_row_wise".
    """
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
    from torchrec.distributed.sharding_plan import (construct_module_sharding_plan, data_parallel, table_row_wise,
                                                    table_wise)
    from torchrec.distributed.types import ShardingPlan

    if sharding not in ("table_wise", "table_row_wise"):
        raise InputError(f"unknown sharding {sharding!r}", "use 'table_wise' or 'table_row_wise'")
    world_size = world_size or dmt.topology.world_size
    local_size = local_size or dmt.topology.local_size
    hosts = world_size // local_size
    host_of = {(r.source, r.table): r.host % hosts for refs in resolve_tables(dmt) for r in refs}
    counter, plan = [0] * hosts, {}
    for fqn, ebc in model.named_modules():
        if type(ebc).__name__ != "EmbeddingBagCollection":
            continue
        per = {}
        for c in ebc.embedding_bag_configs():
            h = host_of.get((fqn, c.name))
            if h is None:
                per[c.name] = data_parallel()
            elif sharding == "table_wise":
                per[c.name] = table_wise(rank=h * local_size + counter[h] % local_size)
                counter[h] += 1
            else:
                per[c.name] = table_row_wise(host_index=h)
        plan[fqn] = construct_module_sharding_plan(ebc, per, sharder=EmbeddingBagCollectionSharder(),
                                                   local_size=local_size, world_size=world_size, device_type="cpu")
    return ShardingPlan(plan)
