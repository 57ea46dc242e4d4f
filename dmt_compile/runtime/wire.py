"""Wire format of the tower runtime: id fields packed as jagged streams, rows packed flat.

An *id field* is one thing a lookup reads: `rows` (a batch-major id tensor `[n, *trailing]`) or
`jagged` (EmbeddingBag `values` + `offsets` [+ `per_sample_weights`]). Every field becomes a
stream `(values int64 1-D, lengths int64 [n], weights float 1-D | None)` so all fields bound for
one group member travel in ONE message (`exchange_ids`). Embeddings travel back as one flat
float block per member (`exchange_rows`), differentiable. Both sides agree on the field order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


__all__ = ["IdField", "Stream", "encode", "decode", "decode_sources", "exchange_ids", "exchange_rows",
           "num_samples", "keyed", "unkeyed", "split_received", "start_rows", "finish_rows", "RowsPending",
           "start_ids", "finish_ids", "IdsPending", "weights_dtype"]


@dataclass(frozen=True)
class IdField:
    kind: str  # "rows" | "jagged" | "kjt"
    positions: tuple  # rows / kjt: (i,); jagged: (values_i, offsets_i, weights_i or None)
    trailing: tuple = ()  # rows: per-sample trailing shape of the ids
    dtype: str = "int64"  # dtype of the ids
    offsets_dtype: str = "int64"
    include_last_offset: bool = False
    weights_dtype: str | None = None
    keys: tuple = ()  # kjt: the KeyedJaggedTensor's keys (its lengths are key-major)
    weighted: bool = False  # kjt: carries per-id weights

    @property
    def mult(self) -> int:
        """Length entries per sample in this field's stream."""
        return len(self.keys) if self.kind == "kjt" else 1


@dataclass
class Stream:
    values: torch.Tensor  # int64 [total ids]
    lengths: torch.Tensor  # int64 [n samples]
    weights: torch.Tensor | None  # float [total ids] or None


def _dt(name: str) -> torch.dtype:
    return getattr(torch, name)


def num_samples(field: IdField, ids: Sequence[Any]) -> int:
    if field.kind == "kjt":
        return int(ids[field.positions[0]].stride())
    if field.kind == "rows":
        return int(ids[field.positions[0]].shape[0])
    offsets = ids[field.positions[1]]
    return int(offsets.shape[0]) - (1 if field.include_last_offset else 0)


def encode(field: IdField, ids: Sequence[Any]) -> Stream:
    """The field's ids for all samples as a stream."""
    if field.kind == "kjt":
        kjt = ids[field.positions[0]]
        w = kjt.weights_or_none()
        return Stream(kjt.values().to(torch.int64), kjt.lengths().to(torch.int64), None if w is None else w.detach())
    if field.kind == "rows":
        x = ids[field.positions[0]]
        n = x.shape[0]
        per = x[0].numel() if n else int(torch.Size(field.trailing).numel())
        return Stream(x.reshape(-1).to(torch.int64), torch.full((n,), per, dtype=torch.int64, device=x.device), None)
    values, offsets = ids[field.positions[0]], ids[field.positions[1]].to(torch.int64)
    bounds = offsets if field.include_last_offset else torch.cat([offsets, offsets.new_tensor([values.numel()])])
    lengths = bounds[1:] - bounds[:-1]
    weights = ids[field.positions[2]] if field.positions[2] is not None else None
    return Stream(values.to(torch.int64), lengths, None if weights is None else weights.detach())


def decode(field: IdField, stream: Stream) -> dict[int, torch.Tensor]:
    """Position -> tensor, rebuilt from a stream (the inverse of `encode`)."""
    if field.kind == "rows":
        n = stream.lengths.numel()
        return {field.positions[0]: stream.values.to(_dt(field.dtype)).reshape(n, *field.trailing)}
    zero = stream.lengths.new_zeros(1)
    bounds = torch.cat([zero, torch.cumsum(stream.lengths, 0)])
    offsets = bounds if field.include_last_offset else bounds[:-1]
    out = {field.positions[0]: stream.values.to(_dt(field.dtype)),
           field.positions[1]: offsets.to(_dt(field.offsets_dtype))}
    if field.positions[2] is not None:
        out[field.positions[2]] = stream.weights.to(_dt(field.weights_dtype or "float32"))
    return out


def decode_sources(field: IdField, streams: Sequence[Stream]) -> dict[int, Any]:
    """Position -> tensor (or KJT) for the samples of several sources, in source order."""
    if field.kind != "kjt":
        return decode(field, _cat(list(streams), any(s.weights is not None for s in streams)))
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    nkeys = len(field.keys)
    lengths_by_key: list[list[torch.Tensor]] = [[] for _ in range(nkeys)]
    values_by_key: list[list[torch.Tensor]] = [[] for _ in range(nkeys)]
    weights_by_key: list[list[torch.Tensor]] = [[] for _ in range(nkeys)]
    for st in streams:  # each source: key-major lengths [keys x samples]
        per_key = st.lengths.reshape(nkeys, -1)
        counts = per_key.sum(1).tolist()
        for k, (vals, lens) in enumerate(zip(torch.split(st.values, counts), per_key)):
            lengths_by_key[k].append(lens)
            values_by_key[k].append(vals)
        if field.weighted and st.weights is not None:
            for k, w in enumerate(torch.split(st.weights, counts)):
                weights_by_key[k].append(w)
    values = torch.cat([v for vs in values_by_key for v in vs]).to(_dt(field.dtype))
    lengths = torch.cat([x for xs in lengths_by_key for x in xs])
    weights = torch.cat([w for ws in weights_by_key for w in ws]) if field.weighted else None
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=list(field.keys), values=values, lengths=lengths, weights=weights)
    return {field.positions[0]: kjt}


def unkeyed(x: Any) -> torch.Tensor:
    """A torchrec KeyedTensor travels as its values."""
    return x.values() if type(x).__name__ == "KeyedTensor" else x


def keyed(x: torch.Tensor, layout) -> Any:
    """Rebuild a KeyedTensor from its values when `layout` = (keys, length_per_key), else `x`."""
    if layout is None:
        return x
    from torchrec.sparse.jagged_tensor import KeyedTensor

    return KeyedTensor(keys=list(layout[0]), length_per_key=list(layout[1]), values=x)


def weights_dtype(fields: Sequence[IdField]) -> torch.dtype | None:
    """The dtype per-sample weights travel in for these fields (the same on every rank: read from the
    plan's fields): float64 if any field's weights are float64, float32 otherwise; None without weights."""
    dtypes = [f.weights_dtype or "float32" for f in fields
              if (f.kind == "jagged" and f.positions[2] is not None) or (f.kind == "kjt" and f.weighted)]
    if not dtypes:
        return None
    return torch.float64 if "float64" in dtypes else torch.float32


def _cat(streams: list[Stream], with_weights: "bool | torch.dtype | None", device: torch.device | None = None) -> Stream:
    """One stream of `streams`; weights (ones where a stream has none) in `with_weights`' dtype
    (True: float32), so every member sends and expects the same dtype."""
    wdt = with_weights if isinstance(with_weights, torch.dtype) else torch.float32
    if not streams:
        w = torch.zeros(0, dtype=wdt, device=device) if with_weights else None
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return Stream(empty, empty.clone(), w)
    weights = None
    if with_weights:
        weights = torch.cat([s.weights.to(wdt) if s.weights is not None
                             else torch.ones(s.values.numel(), dtype=wdt, device=s.values.device) for s in streams])
    return Stream(torch.cat([s.values for s in streams]), torch.cat([s.lengths for s in streams]), weights)


def _device(group: Any) -> torch.device:
    """Where a rank with nothing to send keeps its (empty) buffers: the backend's device."""
    from dmt_compile.runtime.duplex import comm_device as _comm_device

    return _comm_device(group)


@dataclass
class IdsPending:
    """A :func:`start_ids` exchange in flight: counts are known, lengths / values / weights travel."""

    lengths: Any
    values: Any
    weights: Any
    segments: list
    value_counts: list
    recv_mults: Sequence[Sequence[int]]

    def wait(self) -> list[list[Stream]]:
        return finish_ids(self)


def start_ids(sends: Sequence[Sequence[Stream]], recv_mults: Sequence[Sequence[int]], group: Any, label: str,
              op: str, with_weights: "bool | torch.dtype | None", hosts: Sequence[int] | None = None,
              tag: int = 0) -> IdsPending:
    """:func:`exchange_ids` up to the transfer: exchanges the counts (small, blocking), then posts
    lengths, values (and weights) and returns; :func:`finish_ids` waits and splits."""
    from dmt_compile.runtime.collectives import exchange_counts
    from dmt_compile.runtime.duplex import start

    device = next((st.values.device for s in sends for st in s), _device(group))
    packed = [_cat(list(s), with_weights, device) for s in sends]
    total = _cat(packed, with_weights, device)
    seg, nvals = [p.lengths.numel() for p in packed], [p.values.numel() for p in packed]
    counts = exchange_counts([[a, b] for a, b in zip(seg, nvals)], group, label, op=op + ".counts", hosts=hosts)
    rseg, rvals = [c[0] for c in counts], [c[1] for c in counts]
    lengths = start(total.lengths.contiguous(), seg, rseg, group, label, op + ".lengths", hosts, tag=tag)
    values = start(total.values.contiguous(), nvals, rvals, group, label, op + ".values", hosts, tag=tag)
    weights = None
    if with_weights:
        weights = start(total.weights.detach().contiguous(), nvals, rvals, group, label, op + ".weights", hosts,
                        tag=tag)
    return IdsPending(lengths, values, weights, rseg, rvals, recv_mults)


def finish_ids(p: IdsPending) -> list[list[Stream]]:
    """Wait for :func:`start_ids`; per member, its streams (split by the statically known layout)."""
    lengths, values = p.lengths.wait(), p.values.wait()
    weights = p.weights.wait() if p.weights is not None else None
    sizes = []  # length entries of every stream, in order
    for s, seg in enumerate(p.segments):
        mults = list(p.recv_mults[s])
        samples = seg // sum(mults) if mults else 0
        sizes += [samples * m for m in mults]
    ends = torch.tensor(sizes, dtype=torch.int64).cumsum(0)
    csum = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    bounds = csum[ends.to(csum.device)].tolist() if sizes else []
    lens = torch.split(lengths, sizes) if sizes else ()
    out: list[list[Stream]] = []
    k, val_at = 0, 0
    for s in range(len(p.segments)):
        streams: list[Stream] = []
        for _ in p.recv_mults[s]:
            n = int(bounds[k]) - val_at
            w = weights[val_at: val_at + n] if weights is not None else None
            streams.append(Stream(values[val_at: val_at + n], lens[k], w))
            val_at, k = val_at + n, k + 1
        out.append(streams)
    return out


def exchange_ids(sends: Sequence[Sequence[Stream]], recv_mults: Sequence[Sequence[int]], group: Any, label: str,
                 op: str, with_weights: "bool | torch.dtype | None", hosts: Sequence[int] | None = None,
                 ) -> list[list[Stream]]:
    """Send `sends[j]` (streams for member j) in one jagged exchange; split what arrives.

    `recv_mults[s]` lists, for each stream member s sends me, its length entries per sample (1 for
    ids and bags; k for a row-wise lookup of k ids per sample). Both sides know these statically,
    so the n samples of member s are `segment / sum(mults)` and each stream has `n * mult` entries.
    """
    return finish_ids(start_ids(sends, recv_mults, group, label, op, with_weights, hosts))


@dataclass
class RowsPending:
    """An :func:`start_rows` exchange in flight (finish it with :func:`finish_rows`)."""

    flat: torch.Tensor
    send: list
    recv: list
    pending: Any
    recv_layout: Sequence[Sequence[tuple]]
    recv_samples: Sequence[int]
    group: Any
    label: str
    op: str
    hosts: Sequence[int] | None = None  # host of each group member: the backward is host-split too
    codec: Any = None  # wire_codec.WireCodec when the rows travel in another dtype
    counts: tuple = ()  # (send, recv, wire send, wire recv) of a coded exchange


def start_rows(sends: Sequence[Sequence[torch.Tensor]], recv_layout: Sequence[Sequence[tuple]],
               recv_samples: Sequence[int], group: Any, label: str, op: str,
               dtype: torch.dtype = torch.float32, hosts: Sequence[int] | None = None,
               wire_dtype: str | None = None) -> RowsPending:
    """Post the exchange of :func:`exchange_rows` and return at once (full duplex on gloo).

    The rows are `dtype` on both ends; `wire_dtype` (see :mod:`~dmt_compile.runtime.wire_codec`)
    sends them, and their gradients back, in a narrower format."""
    from dmt_compile.runtime.duplex import start
    from dmt_compile.runtime.wire_codec import codec_for, start_coded

    device = next((t.device for ts in sends for t in ts), _device(group))
    # one copy of every row into the send buffer: per-member blocks concatenated again would copy it twice
    parts = [t.reshape(-1).to(dtype) for ts in sends for t in ts]
    flat = torch.cat(parts) if parts else torch.zeros(0, dtype=dtype, device=device)
    if torch.is_grad_enabled() and not flat.requires_grad:
        # a rank with nothing to send must still join the backward exchange, or its peers wait forever
        flat = flat.detach().requires_grad_()
    flat = flat.contiguous()
    send = [sum(t.numel() for t in ts) for ts in sends]
    recv = [recv_samples[s] * sum(int(torch.Size(shape).numel()) for shape in recv_layout[s])
            for s in range(len(recv_layout))]
    codec = codec_for(wire_dtype, dtype)
    if codec is not None:
        pending, counts = start_coded(flat, send, recv, codec, group, label, op, hosts)
        return RowsPending(flat, send, recv, pending, recv_layout, recv_samples, group, label, op, hosts, codec, counts)
    pending = start(flat, send, recv, group, label, op, hosts)
    return RowsPending(flat, send, recv, pending, recv_layout, recv_samples, group, label, op, hosts)


def finish_rows(p: RowsPending) -> list[list[torch.Tensor]]:
    """Wait for a :func:`start_rows` exchange; the received tensors, differentiable."""
    from dmt_compile.runtime.duplex import finish
    from dmt_compile.runtime.wire_codec import finish_coded

    if p.codec is not None:
        got = finish_coded(p.flat, p.pending, p.codec, p.counts, p.group, p.label, p.op, p.hosts)
    else:
        got = finish(p.flat, p.pending, p.send, p.recv, p.group, p.label, p.op, p.hosts)
    return split_received(got, p.recv_layout, p.recv_samples)


def exchange_rows(sends: Sequence[Sequence[torch.Tensor]], recv_layout: Sequence[Sequence[tuple]],
                  recv_samples: Sequence[int], group: Any, label: str, op: str,
                  dtype: torch.dtype = torch.float32, hosts: Sequence[int] | None = None,
                  wire_dtype: str | None = None) -> list[list[torch.Tensor]]:
    """Send batch-major tensors `sends[j]` to member j as one flat block; differentiable.

    `recv_layout[s]` lists the per-sample shapes member s sends me, each for `recv_samples[s]` rows.
    """
    return finish_rows(start_rows(sends, recv_layout, recv_samples, group, label, op, dtype, hosts, wire_dtype))


def split_received(got: torch.Tensor, recv_layout: Sequence[Sequence[tuple]],
                   recv_samples: Sequence[int]) -> list[list[torch.Tensor]]:
    """Cut a flat receive buffer into `[recv_samples[s], *shape]` tensors with ONE `torch.split`.

    Never one slice per tensor: in autograd each `got[a:b]` slice's backward zero-fills a
    gradient the size of the whole buffer and the slices' gradients are summed (O(pieces x
    buffer)); `torch.split`'s backward writes every piece's gradient into one buffer once.
    """
    sizes = [recv_samples[s] * int(torch.Size(shape).numel()) for s, shapes in enumerate(recv_layout)
             for shape in shapes]
    pieces = iter(torch.split(got, sizes) if sizes else ())
    return [[next(pieces).view(recv_samples[s], *shape) for shape in shapes] for s, shapes in enumerate(recv_layout)]
