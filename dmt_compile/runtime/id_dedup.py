"""Deduplicated id exchange: each stream's distinct ids cross once, with a narrow index per id.

Multi-hot and sequence features repeat ids heavily inside one rank's batch (a Zipf head id appears
in most bags). :func:`start_dedup_ids` is :func:`~dmt_compile.runtime.wire.start_ids` with the
values of every stream (one stream = one field, i.e. one table, bound for one member) replaced by
`torch.unique` of them plus the inverse index, and :func:`finish_dedup_ids` expands them back
(`unique[inverse]`) before the streams are split, so the lookups receive exactly the ids, lengths
and per-sample weights of the plain exchange (bag order kept, so pooling sums in the same order).

What travels per member, counted in ``comm_stats`` under ``op + ".counts" / ".lengths" /
".unique" / ".inverse" [/ ".weights"]``: the lengths as before, each distinct id once (int64),
and the inverse as raw bytes of the narrowest integer that indexes the member's distinct ids
(uint8 up to 256, int16 up to 32,768, int32 beyond): ``8 U + w N`` bytes instead of ``8 N`` for N
ids of which U are distinct. Both sides derive w from U, which the count exchange carries.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from dmt_compile.runtime.wire import IdsPending, Stream, _cat, _device, finish_ids

__all__ = ["start_dedup_ids", "finish_dedup_ids", "DedupIdsPending", "index_dtype", "dedup_streams"]


def index_dtype(distinct: int) -> torch.dtype:
    """The narrowest integer dtype that indexes `distinct` ids (what both sides agree on)."""
    if distinct <= 256:
        return torch.uint8
    if distinct <= 32768:
        return torch.int16
    return torch.int32 if distinct <= 2 ** 31 else torch.int64


def dedup_streams(streams: Sequence[Stream]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(unique, inverse)` for one member's streams: the distinct ids of each stream, concatenated
    in stream order, and for every id (in the order of the concatenated values) its index there."""
    uniques, inverses, base = [], [], 0
    for s in streams:
        u, inv = torch.unique(s.values, sorted=True, return_inverse=True)
        uniques.append(u)
        inverses.append(inv + base)
        base += u.numel()
    if not uniques:
        empty = torch.zeros(0, dtype=torch.int64)
        return empty, empty.clone()
    return torch.cat(uniques), torch.cat(inverses)


@dataclass
class _Ready:
    """A finished transfer in the shape `finish_ids` expects (a handle with `wait()`)."""

    tensor: torch.Tensor | None

    def wait(self) -> torch.Tensor | None:
        return self.tensor


@dataclass
class DedupIdsPending:
    """A :func:`start_dedup_ids` exchange in flight."""

    lengths: Any
    unique: Any
    inverse: Any
    weights: Any
    segments: list
    value_counts: list
    unique_counts: list
    recv_mults: Sequence[Sequence[int]]

    def wait(self) -> list[list[Stream]]:
        return finish_dedup_ids(self)


def _index_bytes(inverse: torch.Tensor, distinct: int) -> torch.Tensor:
    return inverse.to(index_dtype(distinct)).contiguous().view(torch.uint8)


def start_dedup_ids(sends: Sequence[Sequence[Stream]], recv_mults: Sequence[Sequence[int]], group: Any, label: str,
                    op: str, with_weights: "bool | torch.dtype | None", hosts: Sequence[int] | None = None,
                    tag: int = 0) -> DedupIdsPending:
    """:func:`~dmt_compile.runtime.wire.start_ids` with deduplicated values (module docstring)."""
    from dmt_compile.runtime.collectives import exchange_counts
    from dmt_compile.runtime.duplex import start

    device = next((st.values.device for s in sends for st in s), _device(group))
    packed = [_cat(list(s), with_weights, device) for s in sends]
    deduped = [dedup_streams(list(s)) for s in sends]
    seg = [p.lengths.numel() for p in packed]
    nvals = [p.values.numel() for p in packed]
    nuniq = [u.numel() for u, _ in deduped]
    counts = exchange_counts([[a, b, c] for a, b, c in zip(seg, nvals, nuniq)], group, label, op=op + ".counts",
                             hosts=hosts)
    rseg, rvals, runiq = [c[0] for c in counts], [c[1] for c in counts], [c[2] for c in counts]
    lengths = start(torch.cat([p.lengths for p in packed]).contiguous() if packed else torch.zeros(0, dtype=torch.int64),
                    seg, rseg, group, label, op + ".lengths", hosts, tag=tag)
    unique = start(torch.cat([u for u, _ in deduped]).to(device).contiguous(), nuniq, runiq, group, label,
                   op + ".unique", hosts, tag=tag)
    index = [_index_bytes(inv, n) for (_, inv), n in zip(deduped, nuniq)]
    recv_index = [v * index_dtype(u).itemsize for v, u in zip(rvals, runiq)]
    inverse = start(torch.cat(index).to(device), [i.numel() for i in index], recv_index, group, label,
                    op + ".inverse", hosts, tag=tag)
    weights = None
    if with_weights:
        w = torch.cat([p.weights for p in packed]).detach().contiguous()
        weights = start(w, nvals, rvals, group, label, op + ".weights", hosts, tag=tag)
    return DedupIdsPending(lengths, unique, inverse, weights, rseg, rvals, runiq, recv_mults)


def finish_dedup_ids(p: DedupIdsPending) -> list[list[Stream]]:
    """Wait for :func:`start_dedup_ids`; per member, its streams exactly as `finish_ids` gives them."""
    unique, index = p.unique.wait(), p.inverse.wait()
    ids = []
    u_at, i_at = 0, 0
    for n_vals, n_uniq in zip(p.value_counts, p.unique_counts):
        width = index_dtype(n_uniq).itemsize
        inv = index[i_at: i_at + n_vals * width].view(index_dtype(n_uniq)).to(torch.int64)
        ids.append(unique[u_at: u_at + n_uniq][inv])
        u_at, i_at = u_at + n_uniq, i_at + n_vals * width
    values = torch.cat(ids) if ids else unique.new_zeros(0)
    weights = p.weights.wait() if p.weights is not None else None
    plain = IdsPending(_Ready(p.lengths.wait()), _Ready(values), None if weights is None else _Ready(weights),
                       p.segments, p.value_counts, p.recv_mults)
    return finish_ids(plain)
