"""The reverse direction: a TorchRec sharding plan's table placement as `transform` pins.

    pins, num_towers, notes = towers_from_torchrec_plan(plan, model, world_size=4, local_size=2)
    dmt = dmt_compile.transform(model, "2x2", inputs, towers=pins, num_towers=num_towers)

A table placed on ranks of one host pins its features to that host's tower (tower t runs on host
t, so tower index = host index). Data-parallel tables, tables spanning hosts (row- or column-wise
over several hosts) and features read by tables on different hosts give no pin: the partitioner
places them, and `notes` says so.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

__all__ = ["pins_from_torchrec_plan", "towers_from_torchrec_plan"]


def _table_features(module: Any, fqn: str | None) -> dict[str, list[str]]:
    """table name -> KJT feature names, for an EBC, an EmbeddingTowerCollection, or a model (by `fqn`)."""
    if isinstance(module, Mapping):
        module = module[fqn]
    elif fqn:
        try:
            module = module.get_submodule(fqn)
        except AttributeError:
            pass
    out: dict[str, list[str]] = {}
    for m in module.modules():
        kind = type(m).__name__
        if kind == "EmbeddingBagCollection":
            out.update({c.name: list(c.feature_names) for c in m.embedding_bag_configs()})
        elif kind == "EmbeddingCollection":
            out.update({c.name: list(c.feature_names) for c in m.embedding_configs()})
    return out


def pins_from_torchrec_plan(plan: Any, module: nn.Module | Mapping[str, nn.Module], local_size: int,
                            notes: list[str] | None = None) -> dict[str, int]:
    """{KJT feature: host} from a `ShardingPlan`, `{fqn: {table: ParameterSharding}}` or `{table: ParameterSharding}`.

    `module`: the model (collections looked up by the plan's FQNs), one collection, or `{fqn: module}`.
    """
    from torchrec.distributed.types import ParameterSharding, ShardingType

    notes = notes if notes is not None else []
    plan = getattr(plan, "plan", plan)
    if plan and all(isinstance(v, ParameterSharding) for v in plan.values()):
        plan = {None: plan}
    pins: dict[str, int] = {}
    conflicts: set[str] = set()
    for fqn, module_plan in plan.items():
        features = _table_features(module, fqn)
        for table, ps in module_plan.items():
            where = f"{fqn}.{table}" if fqn else table
            if table not in features:
                notes.append(f"{where}: not an embedding table of the module; ignored")
                continue
            if ps.sharding_type == ShardingType.DATA_PARALLEL.value or not ps.ranks:
                notes.append(f"{where}: {ps.sharding_type} (replicated): its features are placed by the partitioner")
                continue
            hosts = {r // local_size for r in ps.ranks}
            if len(hosts) > 1:
                notes.append(f"{where}: {ps.sharding_type} spans hosts {sorted(hosts)}: its features are placed by "
                             "the partitioner")
                continue
            (host,) = hosts
            for f in features[table]:
                if pins.setdefault(f, host) != host:
                    conflicts.add(f)
    for f in sorted(conflicts):
        notes.append(f"feature {f}: read by tables on different hosts; placed by the partitioner")
        pins.pop(f, None)
    return pins


def towers_from_torchrec_plan(plan: Any, module: Any, *, world_size: int, local_size: int
                              ) -> tuple[dict[str, int], int, list[str]]:
    """(pins, num_towers, notes) for `transform(towers=pins, num_towers=num_towers)`.

    Towers run on hosts 0..num_towers-1 and none may be empty, so hosts after the last one holding
    a pinned table are dropped (noted); an empty host before it stays for the partitioner to fill.
    """
    notes: list[str] = []
    pins = pins_from_torchrec_plan(plan, module, local_size, notes)
    hosts = world_size // local_size
    used = sorted(set(pins.values()))
    num_towers = hosts
    if used and used[-1] + 1 < hosts:
        num_towers = used[-1] + 1
        notes.append(f"hosts {list(range(num_towers, hosts))} hold no pinned table: num_towers={num_towers}")
    empty = [h for h in range(num_towers) if h not in used]
    if empty:
        notes.append(f"hosts {empty} hold no pinned table: the partitioner must give them features")
    return pins, num_towers, notes
