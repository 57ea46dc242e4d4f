"""What each rank holds of a transformed model's state, under the state's names (for checkpoints).

Every tensor a `ShardedDmt` holds is traced back by identity to the single-process `DmtModel` it
was lowered from, and so to its state-dict key (the original model's name, or `dmt.*`):

* `owned` — a table this rank owns whole (table-wise): written by this rank only;
* `rows` — rows [start, stop) of a table sharded by rows inside a host: a shard of the table;
* `replicated` — dense and Tower-Module parameters and buffers, and the original tensors the graph
  does not use: identical on every replica, written once.

Graph constants (`_tensor_constant*`) are not state and are left out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dmt_compile.ir.module_paths import ADDED_PREFIX
from dmt_compile.model.state_names import held_key

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel
    from dmt_compile.training.sharded import ShardedDmt

__all__ = ["Entry", "StateLayout"]


@dataclass(frozen=True)
class Entry:
    key: str
    tensor: torch.Tensor
    kind: str  # owned | rows | replicated
    start: int = 0  # rows only
    stop: int = 0


@dataclass(frozen=True)
class StateLayout:
    entries: tuple[Entry, ...]  # what this rank holds
    keys: tuple[str, ...]  # every key of the whole model's state, in order
    shapes: dict[str, tuple[int, ...]]  # global shape per key
    dtypes: dict[str, str]
    original: tuple[str, ...]  # the original model's keys
    rebuilt: tuple[str, ...]  # original keys without a value (layers the rewrite replaced)
    split: dict = None  # table split per field -> {"rows": n, "pieces": [[key, start, stop, step], ...]}

    @classmethod
    def build(cls, dmt: DmtModel, sharded: ShardedDmt) -> "StateLayout":
        names = dmt.state_names
        keys = names.piece_keys()  # tables split per field are checkpointed as their pieces
        key_of_path = {k: k for k in keys if k not in names.path and k.startswith(ADDED_PREFIX)}
        for key in names.keys:
            if key in names.path:
                for p in (names.path[key], *names.aliases.get(key, ())):
                    key_of_path[p] = key
        path_of = {id(t): p for p, t in dmt.graph_module.state_dict(keep_vars=True).items()}
        shards = {id(p): (table, a, z) for p, table, a, z in sharded.row_shards}
        owned = {id(p) for p in sharded.embedding_params}
        entries, seen = [], set()
        for _, t in sharded.gm.state_dict(keep_vars=True).items():
            if id(t) in seen:
                continue
            seen.add(id(t))
            if id(t) in shards:
                table, a, z = shards[id(t)]
                entries.append(Entry(key_of_path[table], t, "rows", a, z))
            elif path_of.get(id(t)) in key_of_path:
                entries.append(Entry(key_of_path[path_of[id(t)]], t, "owned" if id(t) in owned else "replicated"))
        for key in names.held:
            entries.append(Entry(key, getattr(dmt.held_state, held_key(key)), "replicated"))
        full = dict(dmt.state_dict())
        graph_state = dmt.graph_module.state_dict()
        full.update({k: graph_state[k] for k in keys if k not in full})
        order = {k: i for i, k in enumerate(keys)}
        entries.sort(key=lambda e: (order[e.key], e.start))
        split = {t: {"rows": s.rows, "pieces": [[p.parameter, p.start, p.stop, p.step] for p in s.pieces]}
                 for t, s in names.split.items()}
        return cls(tuple(entries), keys, {k: tuple(full[k].shape) for k in keys},
                   {k: str(full[k].dtype).removeprefix("torch.") for k in keys}, tuple(names.original),
                   tuple(names.rebuilt), split)

    def counts(self) -> dict[str, int]:
        out = {"owned": 0, "rows": 0, "replicated": 0}
        for e in self.entries:
            out[e.kind] += 1
        return out

    def entry_of(self, tensor: torch.Tensor) -> Entry | None:
        return next((e for e in self.entries if e.tensor is tensor), None)
