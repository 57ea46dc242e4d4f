"""`TableSplits`: concatenated tables that `split-tables` cut into one table per field, and the id range check.

Many CTR libraries keep ONE `nn.Embedding(sum(vocab), D)` for all fields and add per-field offsets
to the ids. `split-tables` replaces such a table by one table per field (rows `[start, stop)` of
the original); `TableSplits` records where each piece came from, so the original table can be
rebuilt (`torch.cat` of the pieces in order) for a flat checkpoint. `check_field_ids` is the graph
op that checks, on the rank that owns the samples and before any exchange, that a field's ids fall
in its row range — out-of-range ids would otherwise read another field's rows in the original
model and fail deep inside torch in the split one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from dmt_compile.errors import InputError

__all__ = ["TablePiece", "TableSplit", "TableSplits", "check_field_ids"]


@dataclass(frozen=True)
class TablePiece:
    parameter: str  # the new table's parameter name in the transformed graph
    start: int  # first row of the original table
    stop: int  # rows start, start + step, ... below stop
    feature: str  # the field served (display name of the id column)
    step: int = 1  # 1 for a contiguous block; F for interleaved field-aware ids (`id * F + field`)

    @property
    def rows(self) -> range:
        return range(self.start, self.stop, self.step)


@dataclass(frozen=True)
class TableSplit:
    table: str  # parameter name of the original table
    pieces: tuple[TablePiece, ...]
    source: str  # "offsets in the graph" | "interleaved ids in the graph" | "declared ranges" | inferred
    rows: int  # rows of the original table
    # inferred ranges: rows no example id fell in, between two fields, are held by both fields' pieces;
    # (start, their values at the split) per such gap, to rebuild them as initial + both pieces' changes
    shared_gaps: tuple[tuple[int, torch.Tensor], ...] = ()

    def whole(self, pieces: dict[str, torch.Tensor]) -> torch.Tensor:
        """The original table from its pieces (`pieces[piece.parameter]`); rows no field owns are zero."""
        first = pieces[self.pieces[0].parameter]
        table = first.new_zeros((self.rows, *first.shape[1:]))
        for piece in self.pieces:
            table[piece.start:piece.stop:piece.step] = pieces[piece.parameter]
        for start, initial in self.shared_gaps:
            stop, rebuilt = start + len(initial), initial.to(table.device, table.dtype).clone()
            for piece in self.pieces:
                if piece.step == 1 and piece.start <= start and stop <= piece.stop:
                    rows = pieces[piece.parameter][start - piece.start:stop - piece.start]
                    rebuilt += rows.to(rebuilt.dtype) - initial.to(rebuilt.device, rebuilt.dtype)
            table[start:stop] = rebuilt
        return table


@dataclass(frozen=True)
class TableSplits:
    splits: tuple[TableSplit, ...] = ()
    notes: tuple[str, ...] = ()  # why tables that look concatenated were left whole

    def rebuild(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The original tables from their pieces in `state` (rows of unused ranges are zero)."""
        return {split.table: split.whole(state) for split in self.splits}


def check_field_ids(ids: torch.Tensor, start: int, stop: int, feature: str, table: str,
                    inferred: bool = False) -> torch.Tensor:
    """`ids` unchanged when every id is in `[start, stop)`, else a typed error naming the field, rank and value."""
    if ids.numel():
        lo, hi = int(ids.min()), int(ids.max())
        if lo < start or hi >= stop:
            bad = lo if lo < start else hi
            rank = f" on rank {dist.get_rank()}" if dist.is_available() and dist.is_initialized() else ""
            how = "inferred from the example/calibration ids" if inferred else "of the split"
            raise InputError(
                f"feature {feature} has id {bad}{rank}, outside its rows [{start}, {stop}) of table {table} ({how})",
                "pass table_ranges= with each field's true rows when transforming" if inferred else
                "feed ids in each field's range (the table was split per field when the model was transformed; "
                "declare the ranges with table_ranges= if the ids are pre-offset differently)",
            )
    return ids
