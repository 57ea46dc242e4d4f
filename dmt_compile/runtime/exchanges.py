"""The modules a lowered per-rank graph calls at the tower boundaries (docs/DESIGN.md, runtime).

* `PeerIdsExchange` — every tower's ids, peer-first: tower t's ids go to member host(t) of my
  peer group (ranks with my local index), all towers in ONE jagged exchange; I get the ids of my
  host's towers for the N·b samples of my peers.
* `TowerLookup` — inside the host: ids routed to the rank that owns each table (table-wise), looked
  up and pooled there over all samples of the host, rows sent back (one id and one row exchange).
* `PeerOutputsExchange` — the Tower Modules' outputs go back peer-first to the sample owners, all
  towers in ONE exchange; differentiable, so backward mirrors it. Lowered as `OutputsStart` (right
  after my host's Tower Modules) and `OutputsWait` (right before the first use of an output), so
  the compute in between overlaps the transfer.

With a 1 x W topology (the flat baseline) the peer stage is the identity and `TowerLookup` runs
over the whole world: one global AlltoAll for ids and one for embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime.id_check import IdRangeCheck, check_ids
from dmt_compile.runtime.tags import PREFETCH_TAGS
from dmt_compile.runtime.wire import (
    IdField, Stream, decode_sources, encode, exchange_ids, exchange_rows, finish_rows, keyed, start_ids,
    start_rows, unkeyed, weights_dtype,
)

__all__ = ["PeerIdsExchange", "TowerLookup", "PeerOutputsExchange", "LookupCall", "OutputsStart", "OutputsWait"]


class PeerIdsExchange(nn.Module):
    """All towers' ids to their hosts over the peer group (see module docstring)."""

    def __init__(self, fields: dict[int, list[IdField]], tower_host: dict[int, int], my_host: int,
                 num_hosts: int, group: Any, label: str = "cross", id_check: IdRangeCheck | None = None):
        super().__init__()
        self.fields, self.tower_host, self.my_host, self.num_hosts = fields, tower_host, my_host, num_hosts
        self.group, self.label, self.id_check = group, label, id_check
        self.local_towers = sorted(t for t, h in tower_host.items() if h == my_host)
        # the dtype weights travel in (None: no weights); from the plan, so every member agrees
        self.with_weights = weights_dtype([f for fs in fields.values() for f in fs if f.kind == "jagged"])
        self.samples_from: dict[int, list[int]] = {}  # local tower -> samples received from each member
        self.my_samples = 0
        self._prefetched: list = []  # id exchanges of later batches, started by prefetch()
        self.dedup_ids = False  # each stream's distinct ids cross once (runtime/id_dedup.py)

    def extra_repr(self) -> str:
        return (f"towers={sorted(self.fields)}, my_host={self.my_host}, local_towers={self.local_towers}, "
                f"fields={sum(len(f) for f in self.fields.values())}, label={self.label!r}")

    def forward(self, *tower_ids: Sequence[torch.Tensor]):
        pending = self._take_prefetched(tower_ids)
        return self.finish(pending if pending is not None else self.start(*tower_ids))

    def start(self, *tower_ids: Sequence[torch.Tensor], tag: int = 0) -> "_IdsInFlight":
        """Count and post the exchange of these ids; :meth:`finish` waits and decodes."""
        check_ids(self.id_check, tower_ids)  # ids out of range fail here, naming the feature and this rank
        towers = sorted(self.fields)
        my_samples = next((num_samples(self.fields[t][0], tower_ids[i]) for i, t in enumerate(towers)
                           if self.fields[t]), 0)
        if self.num_hosts == 1:  # flat baseline: no peer stage
            return _IdsInFlight(my_samples, None, tower_ids)
        sends: list[list[Stream]] = [[] for _ in range(self.num_hosts)]
        for i, t in enumerate(towers):
            sends[self.tower_host[t]] += [encode(f, tower_ids[i]) for f in self.fields[t]]
        mults = [f.mult for t in self.local_towers for f in self.fields[t]]
        begin = start_ids
        if self.dedup_ids:
            from dmt_compile.runtime.id_dedup import start_dedup_ids as begin
        pending = begin(sends, [mults] * self.num_hosts, self.group, self.label, "ids", self.with_weights, tag=tag)
        return _IdsInFlight(my_samples, pending, tower_ids)

    def prefetch(self, *tower_ids: Sequence[torch.Tensor]) -> None:
        """Start the exchange of a LATER batch's ids now (on its own tag); the forward of that batch
        uses it. Every rank must prefetch the same batches in the same order (:class:`IdsPipeline`)."""
        self._prefetched.append(self.start(*tower_ids, tag=PREFETCH_TAGS[len(self._prefetched) % 2]))

    def prefetched(self) -> int:
        """How many prefetched exchanges wait for their forward."""
        return len(self._prefetched)

    def drop_prefetched(self) -> None:
        """Complete and forget prefetched exchanges whose batches will not run (on every rank)."""
        for p in self._prefetched:
            if p.pending is not None:
                p.pending.wait()
        self._prefetched.clear()

    def _take_prefetched(self, tower_ids: tuple) -> "_IdsInFlight | None":
        if not self._prefetched:
            return None
        pending = self._prefetched.pop(0)
        if not _same_ids(pending.tower_ids, tower_ids):
            self._prefetched.clear()
            raise RuntimeSetupError("the ids prefetched for this step belong to another batch",
                                    "prefetch exactly the batches you then run, in order (see IdsPipeline)")
        return pending

    def finish(self, p: "_IdsInFlight"):
        towers = sorted(self.fields)
        self.my_samples = p.my_samples
        if p.pending is None:
            self.samples_from = {t: [self.my_samples] for t in self.local_towers}
            return tuple(tuple(p.tower_ids[i]) if t in self.local_towers else None for i, t in enumerate(towers))
        got = p.pending.wait()  # wire.IdsPending or id_dedup.DedupIdsPending
        result: dict[int, tuple] = {}
        at = 0
        for t in self.local_towers:
            count = len(self.fields[t])
            mult = self.fields[t][0].mult if count else 1
            self.samples_from[t] = [int(got[s][at].lengths.numel()) // mult if count else 0
                                    for s in range(self.num_hosts)]
            ids: dict[int, torch.Tensor] = {}
            for k, f in enumerate(self.fields[t]):
                ids.update(decode_sources(f, [got[s][at + k] for s in range(self.num_hosts)]))
            result[t] = tuple(ids[p] for p in sorted(ids))
            at += count
        return tuple(result.get(t) for t in towers)


@dataclass
class _IdsInFlight:
    my_samples: int
    pending: Any  # wire.IdsPending, or None for the flat baseline
    tower_ids: tuple


def _same_ids(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Every id tensor (or KJT) of two batches is equal."""
    fa, fb = _flat_ids(a), _flat_ids(b)
    return len(fa) == len(fb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(fa, fb))


def _flat_ids(ids: Any) -> list[torch.Tensor]:
    if isinstance(ids, torch.Tensor):
        return [ids]
    if isinstance(ids, (tuple, list)):
        return [t for x in ids for t in _flat_ids(x)]
    if hasattr(ids, "values") and hasattr(ids, "lengths"):  # a torchrec KeyedJaggedTensor
        return [ids.values(), ids.lengths()]
    return []


def num_samples(field: IdField, ids: Sequence[Any]) -> int:
    from dmt_compile.runtime.wire import num_samples as _n

    return _n(field, ids)


class LookupCall(nn.Module):
    """One original lookup call with its id arguments substituted (module or functional)."""

    def __init__(self, table: nn.Module | None, function: Any, arg_template: list, kwarg_template: dict,
                 weight: torch.Tensor | None = None):
        super().__init__()
        self.table = table
        self.function = function
        self.arg_template = arg_template  # ("id", position) | ("weight",) | constant
        self.kwarg_template = kwarg_template
        if weight is not None:
            self.weight = weight

    def forward(self, ids: dict[int, torch.Tensor]):
        def fill(a):
            if isinstance(a, tuple) and a and a[0] == "id":
                return ids[a[1]]
            if isinstance(a, tuple) and a and a[0] == "weight":
                return self.weight
            return a

        args = [fill(a) for a in self.arg_template]
        kwargs = {k: fill(v) for k, v in self.kwarg_template.items()}
        return self.table(*args, **kwargs) if self.table is not None else self.function(*args, **kwargs)


class TowerLookup(nn.Module):
    """Sharded lookups of one tower over the host's ranks (the intra group).

    `owners[k]` is the member that owns lookup k's table (table-wise), or -1 when the table is
    sharded row-wise over every member (`row_wise[k]`, see `row_wise.py`). All ids travel in one
    jagged exchange and all embeddings (or row-wise partial sums) come back in one row exchange.
    """

    def __init__(self, tower: int, lookup_fields: list[list[IdField]], owners: list[int], out_shapes: list[tuple],
                 calls: dict[int, LookupCall], my_index: int, size: int, group: Any, label: str = "intra",
                 hosts=None, row_wise: dict | None = None, shards: dict | None = None, keyed_out: list | None = None,
                 emb_dtype: torch.dtype = torch.float32, wire_dtype: str | None = None):
        super().__init__()
        self.emb_dtype, self.wire_dtype = emb_dtype, wire_dtype  # rows' own dtype; codec on the wire (or None)
        self.tower, self.lookup_fields, self.owners, self.out_shapes = tower, lookup_fields, owners, out_shapes
        self.calls = nn.ModuleDict({str(k): c for k, c in calls.items()})  # only the lookups this rank owns
        self.my_index, self.size, self.group, self.label, self.hosts = my_index, size, group, label, hosts
        self.row_wise = row_wise or {}  # k -> RowWiseLookup (spec, how to read its ids as bags, row starts)
        self.shards = nn.ModuleDict(shards or {})  # table key -> RowShard (my rows of row-wise tables)
        self.keyed_out = keyed_out or [None] * len(owners)  # (keys, lengths) when lookup k returns a KeyedTensor
        # row-wise lookups are among lookup_fields too: their bag weights travel in the same dtype
        self.with_weights = weights_dtype([f for fs in lookup_fields for f in fs if f.kind == "jagged"])

    def extra_repr(self) -> str:
        mine = [k for k, o in enumerate(self.owners) if o == self.my_index]
        return (f"tower={self.tower}, owners={self.owners}, mine={mine}, row_wise={sorted(self.row_wise)}, "
                f"label={self.label!r}")

    def forward(self, ids: Sequence[torch.Tensor]):
        from dmt_compile.runtime.row_wise import split_by_shard

        me, size = self.my_index, self.size
        sends: list[list[Stream]] = [[] for _ in range(size)]
        bags: dict[int, Stream] = {}
        for k, o in enumerate(self.owners):
            if o >= 0:
                sends[o] += [encode(f, ids) for f in self.lookup_fields[k]]
            else:
                rw = self.row_wise[k]
                bags[k] = rw.bags(ids)
                for j, part in enumerate(split_by_shard(bags[k], rw.starts)):
                    sends[j].append(part)
        n = next((num_samples(fs[0], ids) for fs in self.lookup_fields if fs), 0)
        mults: list[int] = []
        for k, o in enumerate(self.owners):
            if o == me:
                mults += [f.mult for f in self.lookup_fields[k]]
            elif o == -1:
                mults.append(self.row_wise[k].bags_per_sample if self.row_wise[k].kind == "ids" else 1)
        got = exchange_ids(sends, [mults] * size, self.group, self.label, f"tower{self.tower}.ids",
                           self.with_weights, self.hosts)
        back: list[list[torch.Tensor]] = [[] for _ in range(size)]
        at = 0
        for k, o in enumerate(self.owners):
            if o == me:
                fields = self.lookup_fields[k]
                rebuilt: dict[int, torch.Tensor] = {}
                for j, f in enumerate(fields):
                    rebuilt.update(decode_sources(f, [got[s][at + j] for s in range(size)]))
                counts = [int(got[s][at].lengths.numel()) // fields[0].mult for s in range(size)]
                at += len(fields)
                out = unkeyed(self.calls[str(k)](rebuilt))
                for s, piece in enumerate(torch.split(out, counts)):
                    back[s].append(piece)
            elif o == -1:
                rw = self.row_wise[k]
                shard = self.shards[rw.key]
                for s in range(size):
                    stream = got[s][at]
                    partial = shard(stream)  # [bags from s, dim]
                    back[s].append(partial.reshape(-1, rw.bags_per_sample * rw.dim))
                at += 1
        layout = [[self.out_shapes[k] if o == j else (self.row_wise[k].bags_per_sample * self.row_wise[k].dim,)
                   for k, o in enumerate(self.owners) if o in (j, -1)] for j in range(size)]
        rows = exchange_rows(back, layout, [n] * size, self.group, self.label, f"tower{self.tower}.emb",
                             dtype=self.emb_dtype, hosts=self.hosts, wire_dtype=self.wire_dtype)
        outputs: list[torch.Tensor | None] = [None] * len(self.owners)
        taken = [0] * size
        for k, o in enumerate(self.owners):
            if o >= 0:
                outputs[k] = keyed(rows[o][taken[o]], self.keyed_out[k])
                taken[o] += 1
            else:
                total = sum(rows[j][taken[j]] for j in range(size))
                for j in range(size):
                    taken[j] += 1
                outputs[k] = self.row_wise[k].finish(total, bags[k], n)
        return tuple(outputs)


class PeerOutputsExchange(nn.Module):
    """Tower outputs back to the sample owners over the peer group; differentiable."""

    def __init__(self, ids_exchange: PeerIdsExchange, payload_shapes: dict[int, list[tuple]], dtype: torch.dtype,
                 group: Any, label: str = "cross", payload_keyed: dict[int, list] | None = None,
                 wire_dtype: str | None = None):
        super().__init__()
        self.wire_dtype = wire_dtype  # codec of the tower outputs and their gradients (None: self.dtype)
        self.ids_exchange = [ids_exchange]  # a list: shared state, not a submodule
        self.payload_shapes, self.dtype, self.group, self.label = payload_shapes, dtype, group, label
        # tower -> per payload (keys, lengths) when it is a torchrec KeyedTensor (it travels as its values)
        self.payload_keyed = payload_keyed or {t: [None] * len(v) for t, v in payload_shapes.items()}

    def extra_repr(self) -> str:
        return f"payload_shapes={self.payload_shapes}, label={self.label!r}"

    def forward(self, *local_payloads: Sequence[torch.Tensor]):
        """Blocking exchange: :meth:`finish` of :meth:`start`."""
        return self.finish(self.start(*local_payloads))

    def start(self, *local_payloads: Sequence[torch.Tensor]) -> Any:
        """Post the exchange of my host's tower outputs (returns at once); see :class:`OutputsWait`."""
        ex = self.ids_exchange[0]
        if ex.num_hosts == 1:
            return tuple(tuple(p) for p in local_payloads)  # KeyedTensors stay as they are
        towers = sorted(self.payload_shapes)
        sends: list[list[torch.Tensor]] = [[] for _ in range(ex.num_hosts)]
        for t, payload in zip(ex.local_towers, local_payloads):
            # one split per payload tensor (not a slice per source: see wire.split_received)
            per_source = [torch.split(unkeyed(p), ex.samples_from[t]) for p in payload]
            for s in range(ex.num_hosts):
                sends[s] += [pieces[s] for pieces in per_source]
        layout = [[shape for t in towers if ex.tower_host[t] == g for shape in self.payload_shapes[t]]
                  for g in range(ex.num_hosts)]
        return start_rows(sends, layout, [ex.my_samples] * ex.num_hosts, self.group, self.label, "outputs",
                          dtype=self.dtype, wire_dtype=self.wire_dtype)

    def finish(self, pending: Any):
        """Wait for :meth:`start`'s exchange: per tower (sorted), its payload for my samples."""
        ex = self.ids_exchange[0]
        if ex.num_hosts == 1:
            return pending
        got = finish_rows(pending)
        result, taken = [], [0] * ex.num_hosts
        for t in sorted(self.payload_shapes):
            g = ex.tower_host[t]
            count = len(self.payload_shapes[t])
            result.append(tuple(keyed(x, lay) for x, lay in zip(got[g][taken[g]: taken[g] + count],
                                                                 self.payload_keyed[t])))
            taken[g] += count
        return tuple(result)


class OutputsStart(nn.Module):
    """Graph node: post the output exchange as soon as my host's Tower Modules are done."""

    def __init__(self, outputs: PeerOutputsExchange):
        super().__init__()
        self.outputs = [outputs]  # shared, not a submodule

    def forward(self, *local_payloads: Sequence[torch.Tensor]):
        return self.outputs[0].start(*local_payloads)


class OutputsWait(nn.Module):
    """Graph node, placed right before the first use of any tower output: wait for the exchange.

    What runs between :class:`OutputsStart` and this node (e.g. a bottom MLP that does not read the
    embeddings) overlaps the transfer; backward sends the gradients back synchronously.
    """

    def __init__(self, outputs: PeerOutputsExchange):
        super().__init__()
        self.outputs = [outputs]

    def forward(self, pending: Any):
        return self.outputs[0].finish(pending)
