"""`table_ranges=`: per-field row ranges the user declares for tables whose ids arrive pre-offset."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.fx as fx

from dmt_compile.errors import PlanError

__all__ = ["normalize_ranges"]


def _ranges(name: str, spec: Any, rows: int) -> list[tuple[int, int]]:
    if not isinstance(spec, Sequence) or isinstance(spec, str) or len(spec) < 2:
        raise PlanError(f"table_ranges[{name!r}] must list at least two fields, got {spec!r}",
                        "give [(start, stop), ...] per field, or the rows of each field, e.g. [10, 20, 30]")
    if all(isinstance(x, int) and not isinstance(x, bool) for x in spec):
        starts = [0]
        for size in spec:
            if size < 1:
                raise PlanError(f"table_ranges[{name!r}] has a field with {size} rows", "every field needs >= 1 row")
            starts.append(starts[-1] + size)
        out = list(zip(starts[:-1], starts[1:]))
    elif all(isinstance(x, Sequence) and len(x) == 2 for x in spec):
        out = [(int(a), int(b)) for a, b in spec]
    else:
        raise PlanError(f"table_ranges[{name!r}] mixes sizes and ranges: {spec!r}",
                        "give [(start, stop), ...] per field, or the rows of each field")
    for a, b in out:
        if not 0 <= a < b <= rows:
            raise PlanError(f"table_ranges[{name!r}] has range [{a}, {b}), outside the table's {rows} rows",
                            f"use ranges within [0, {rows})")
    ordered = sorted(out)
    for (a0, b0), (a1, b1) in zip(ordered, ordered[1:]):
        if a1 < b0:
            raise PlanError(f"table_ranges[{name!r}] has overlapping ranges [{a0}, {b0}) and [{a1}, {b1})",
                            "each row belongs to one field")
    return out


def normalize_ranges(table_ranges: Mapping[str, Any] | None, gm: fx.GraphModule,
                     lookups: Mapping[str, list]) -> dict[str, list[tuple[int, int]]]:
    """{table parameter name: [(start, stop) per field]} from the user's spec; typed errors for bad input."""
    if table_ranges is None:
        return {}
    if not isinstance(table_ranges, Mapping):
        raise PlanError(f"table_ranges must be a dict, got {type(table_ranges).__name__}",
                        'write table_ranges={"embedding": [10, 20, 30]} (rows per field) or [(0, 10), ...]')
    out = {}
    for name, spec in table_ranges.items():
        table = name if name in lookups else f"{name}.weight"
        if table not in lookups:
            raise PlanError(f"table_ranges names {name!r}, which is not an embedding table looked up by the model",
                            "tables: " + ", ".join(sorted(lookups)))
        out[table] = _ranges(name, spec, lookups[table][0][1].rows)
    return out
