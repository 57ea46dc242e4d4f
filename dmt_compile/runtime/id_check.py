"""Id range check where ids enter the runtime: before the peer id exchange, on the rank that read them.

An id outside ``[0, rows)`` of its table would otherwise travel to the table's owner and fail there
(an ``IndexError`` on another rank, which then gets the blame) or, with a row-wise shard, land in the
wrong shard. :class:`IdRangeCheck` looks at every id field of every tower with a few vectorised ops
(all fields concatenated, compared with their bounds once, one ``any``); only when something is out
of range does it find the first offender and raise :class:`~dmt_compile.errors.InputError` naming
the feature, the table, the rank, the sample and the value.

Switch: on by default. ``DMT_CHECK_IDS=0`` in the environment turns it off (read when the check is
built, i.e. when a rank's program is lowered), and :data:`ENABLED` (``None``: follow the
environment; ``True`` / ``False``) overrides the environment for this process. Its cost is measured
by ``benchmarks/bench_id_check.py`` (docs/RELIABILITY.md).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from dmt_compile.errors import InputError
from dmt_compile.runtime.wire import IdField

__all__ = ["IdBound", "IdRangeCheck", "check_ids", "check_id_dtypes", "ID_DTYPES", "ids_check_enabled", "ENABLED", "ENV_VAR"]

ENV_VAR = "DMT_CHECK_IDS"
#: Process-wide override of the environment variable: None (follow DMT_CHECK_IDS), True or False.
ENABLED: bool | None = None


def ids_check_enabled() -> bool:
    """Whether new checks are active: :data:`ENABLED` if set, else ``DMT_CHECK_IDS`` (default on)."""
    if ENABLED is not None:
        return bool(ENABLED)
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class IdBound:
    """One id field of a tower: where its ids are, and the table they index."""

    field: IdField
    rows: int  # ids must be in [0, rows)
    features: tuple[str, ...]  # the feature(s) the field carries (a KJT: one per key)
    table: str


def _values(f: IdField, ids: Sequence[Any]) -> torch.Tensor:
    """The field's ids as one 1-D tensor (a view; the hot path of the check)."""
    x = ids[f.positions[0]]
    if f.kind == "kjt":
        return x.values()
    return x if x.dim() == 1 else x.reshape(-1)


def _ids_of(bound: IdBound, ids: Sequence[Any]) -> tuple[torch.Tensor, int]:
    """(the field's ids as one 1-D tensor, samples) without copying where possible."""
    f = bound.field
    x = ids[f.positions[0]]
    if f.kind == "kjt":
        return x.values(), int(x.stride())
    if f.kind == "rows":
        return x.reshape(-1), int(x.shape[0])
    offsets = ids[f.positions[1]]
    return x.reshape(-1), int(offsets.shape[0]) - (1 if f.include_last_offset else 0)


class IdRangeCheck:
    """Checks the id fields of every tower against their tables' sizes (module docstring).

    ``bounds[t]`` lists tower ``t``'s fields; one field read by several lookups appears once with
    the smallest table. Calling it with the towers' id tuples (in ``sorted(bounds)`` order, as
    :class:`~dmt_compile.runtime.exchanges.PeerIdsExchange` receives them) raises on the first
    offending id, or returns None.
    """

    def __init__(self, bounds: dict[int, Sequence[IdBound]], enabled: bool | None = None):
        merged: dict[int, list[IdBound]] = {}
        for t, items in sorted(bounds.items()):
            by_field: dict[IdField, IdBound] = {}
            for b in items:
                old = by_field.get(b.field)
                if old is None or b.rows < old.rows:
                    by_field[b.field] = b
            merged[t] = list(by_field.values())
        self.bounds = merged
        self.enabled = ids_check_enabled() if enabled is None else bool(enabled)
        self.num_fields = sum(len(v) for v in merged.values())
        self._cache: dict[tuple, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"IdRangeCheck(fields={self.num_fields}, enabled={self.enabled})"

    def __call__(self, tower_ids: Sequence[Sequence[Any] | None]) -> None:
        if not self.num_fields:
            return
        check_id_dtypes(self.bounds, tower_ids)  # always (dtype metadata only): float ids would be truncated
        if not self.enabled:
            return
        values, rows = [], []
        for i, t in enumerate(self.bounds):
            if tower_ids[i] is None:
                continue
            for b in self.bounds[t]:
                v = _values(b.field, tower_ids[i])
                if v.numel():
                    values.append(v)
                    rows.append(b.rows)
        if not values:
            return
        flat = torch.cat(values) if len(values) > 1 else values[0]
        if bool(((flat < 0) | (flat >= self._limits(rows, values, flat.device))).any()):
            self._raise(tower_ids)

    def _limits(self, rows: list[int], values: list[torch.Tensor], device: torch.device) -> Any:
        """Each id's bound, one tensor per layout of the batch (cached: batches repeat their layout)."""
        if len(set(rows)) == 1:
            return rows[0]
        key = (tuple(int(v.numel()) for v in values), tuple(rows), str(device))
        limits = self._cache.get(key)
        if limits is None:
            counts = torch.tensor(key[0], device=device)
            limits = torch.repeat_interleave(torch.tensor(rows, dtype=values[0].dtype, device=device), counts)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = limits
        return limits

    def _raise(self, tower_ids: Sequence[Sequence[Any] | None]) -> None:
        """Find the first id out of range, field by field, and raise naming it."""
        for i, t in enumerate(self.bounds):
            if tower_ids[i] is None:
                continue
            for b in self.bounds[t]:
                v, samples = _ids_of(b, tower_ids[i])
                bad = ((v < 0) | (v >= b.rows)).nonzero()
                if bad.numel():
                    raise _error(b, tower_ids[i], v, int(bad[0, 0]), samples, t)


def _locate(bound: IdBound, ids: Sequence[Any], index: int, samples: int) -> tuple[int, str]:
    """(sample, feature) of the `index`-th id of a field."""
    f = bound.field
    if f.kind == "rows":
        per = max(1, int(ids[f.positions[0]][0].numel())) if samples else 1
        column = index % per
        name = bound.features[column] if len(bound.features) == per and per > 1 else ", ".join(bound.features)
        return index // per, name
    if f.kind == "kjt":
        kjt = ids[f.positions[0]]
        counts = kjt.length_per_key()
        k = 0
        while index >= counts[k]:
            index -= counts[k]
            k += 1
        lengths = kjt.lengths()[k * samples:(k + 1) * samples]
        sample = int(torch.searchsorted(torch.cumsum(lengths, 0), torch.tensor(index, device=lengths.device),
                                        right=True))
        return sample, str(kjt.keys()[k])
    offsets = ids[f.positions[1]].to(torch.int64)
    sample = int(torch.searchsorted(offsets[:samples], torch.tensor(index, device=offsets.device), right=True)) - 1
    return sample, ", ".join(bound.features)


def _error(bound: IdBound, ids: Sequence[Any], v: torch.Tensor, index: int, samples: int, tower: int) -> InputError:
    value = int(v[index])
    sample, feature = _locate(bound, ids, index, samples)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else None
    where = f"rank {rank}" if rank is not None else "this process"
    low, high = int(v.min()), int(v.max())
    return InputError(
        f"{where}: feature {feature!r} has id {value} at sample {sample} of this rank's batch, but its table "
        f"{bound.table} has {bound.rows} rows (ids must be in [0, {bound.rows}); this batch's ids of the field span "
        f"[{low}, {high}]; tower {tower}); checked before the ids leave {where}",
        f"fix the ids {where} feeds for {feature!r} (hashing / vocabulary size), or give the table more rows; "
        f"set {ENV_VAR}=0 to skip this check",
    )


#: The index dtypes ``F.embedding`` / ``F.embedding_bag`` accept (the original model refuses any other).
ID_DTYPES = (torch.int64, torch.int32)


def check_id_dtypes(bounds: dict[int, list[IdBound]], tower_ids: Sequence[Sequence[Any] | None]) -> None:
    """Refuse ids that are not int64/int32 (float, NaN, bool, int16...), naming the rank, feature and a value.

    The exchange would cast them to int64: ``ids + 0.7`` truncated to the id, NaN to INT64_MIN failing on
    the table's owner. The original model refuses them in ``F.embedding``; so does this, on the rank that
    holds them, before anything is sent. Costs one dtype comparison per field.
    """
    for i, t in enumerate(bounds):
        if tower_ids[i] is None:
            continue
        for b in bounds[t]:
            v, samples = _ids_of(b, tower_ids[i])
            if v.dtype not in ID_DTYPES:
                raise _dtype_error(b, tower_ids[i], v, samples)


def _dtype_error(bound: IdBound, ids: Sequence[Any], v: torch.Tensor, samples: int) -> InputError:
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else None
    where = f"rank {rank}" if rank is not None else "this process"
    shown, feature = "", ", ".join(bound.features)
    bad = _first_non_integer(v) if v.numel() else None
    if bad is not None:
        sample, feature = _locate(bound, ids, bad, samples)
        shown = f" (first non-integer value {v[bad].item():.6g} at sample {sample})"
    return InputError(
        f"{where}: feature {feature!r} has ids of dtype {v.dtype}{shown}; embedding ids must be torch.int64 or "
        f"torch.int32, as the original model requires (table {bound.table}): the exchange would truncate "
        "them, and NaN/inf ids have no row",
        f"feed integer ids for {feature!r} on {where} (round or hash them where they are made, then .long())",
    )


def _first_non_integer(v: torch.Tensor) -> int | None:
    """Index of the first value that is NaN, infinite or fractional (None if all are whole numbers)."""
    if not (v.is_floating_point() or v.is_complex()):
        return None
    x = v.real if v.is_complex() else v
    bad = (~torch.isfinite(x) | (x != torch.trunc(x))).nonzero()
    return int(bad[0, 0]) if bad.numel() else None


def check_ids(check: IdRangeCheck | None, tower_ids: Sequence[Sequence[Any] | None]) -> None:
    """The one call at the top of ``PeerIdsExchange.forward``; a no-op without a check or when it is off."""
    if check is not None:
        check(tower_ids)
