"""Per-field row ranges of a table whose ids arrive pre-offset: declared (`table_ranges=`) or inferred.

When one table serves a `[B, F]` id matrix and the model holds no offsets, each column's rows are
inferred from the ids the example and calibration batches hold: columns whose observed ranges are
disjoint split the table (sorted by their smallest id, column k gets the rows from just above
column k-1's largest id to just below column k+1's smallest, the first from row 0, the last to the
end). The unseen rows between two columns are held by both pieces, so an id the examples did not
show still reads its row; only one column's ids ever reach such a row, and the flat table is
rebuilt from the initial rows plus both pieces' changes (`TableSplit.shared_gaps`). The plan says so, and the
split graph checks every id against its field's rows at run time. Overlapping ranges cannot be
told apart: the table stays whole and the note names `table_ranges=`.
"""
from __future__ import annotations

import math

from typing import Any, Mapping, Sequence

import torch
import torch.fx as fx

from dmt_compile.errors import PlanError
from dmt_compile.ir.meta import INPUT_PATH, SHAPE
from dmt_compile.ir.evaluation import evaluation

__all__ = ["DECLARED", "INFERRED", "example_values", "inferred_ranges", "normalize_ranges"]

DECLARED = "declared ranges"
INFERRED = "inferred from data; pass table_ranges= to override"


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
    out = {}
    for name, spec in table_ranges.items():
        table = name if name in lookups else f"{name}.weight"
        if table not in lookups:
            raise PlanError(f"table_ranges names {name!r}, which is not an embedding table looked up by the model",
                            "tables: " + ", ".join(sorted(lookups)))
        out[table] = _ranges(name, spec, lookups[table][0][1].rows)
    return out


def example_values(gm: fx.GraphModule, nodes: list[fx.Node], flat: list[Any]) -> dict[fx.Node, torch.Tensor]:
    """The values the given nodes take on one batch of (flattened) inputs."""
    wanted, seen = set(nodes), {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n in wanted:
                seen[n] = out
            return out

    with evaluation(gm):
        Recorder(gm).run(*flat)
    return seen


#: the largest chance, for columns drawn from one vocabulary, that their observed id ranges are disjoint
#: anyway, at which ranges are still inferred from data
MAX_CHANCE = 1e-3


def chance_disjoint(fields: int, samples: int) -> float:
    """The probability that `fields` columns of `samples` exchangeable, distinct draws each fall in `fields`
    disjoint ranges: `F! (n!)^F / (nF)!`. A `[B, L]` sequence of one vocabulary looks like pre-offset fields
    only by this chance; at batch 1 it is 1 (one id per column is always disjoint)."""
    if samples < 1 or fields < 2:
        return 1.0
    log = math.lgamma(fields + 1) + fields * math.lgamma(samples + 1) - math.lgamma(samples * fields + 1)
    return math.exp(min(log, 0.0))


def inferred_ranges(gm: fx.GraphModule, ctx: Any, columns: list[fx.Node], rows: int) -> list[tuple[int, int]] | str:
    """Each column's rows from the ids of the example and calibration batches, or why they cannot be inferred."""
    shapes = {tuple(c.meta.get(SHAPE) or ())[1:] for c in columns}
    name = columns[0].meta.get(INPUT_PATH, columns[0].name)
    if len(shapes) != 1 or len(next(iter(shapes))) != 1 or next(iter(shapes))[0] < 2:
        return (f"its lookups read ids of shapes {sorted(shapes)}, not one [B, F] matrix of F >= 2 fields; "
                "declare each field's rows with table_ranges= to split it")
    lows, highs, samples = None, None, 0
    for flat in [ctx.flat_inputs, *ctx.calibration]:
        for x in example_values(gm, columns, flat).values():
            if x.is_floating_point() and not torch.equal(x, x.round()):
                return f"the ids of {name} are not integers"
            lo, hi = x.amin(0).long(), x.amax(0).long()
            lows = lo if lows is None else torch.minimum(lows, lo)
            highs = hi if highs is None else torch.maximum(highs, hi)
            samples += x.shape[0]
    fields = len(lows)
    order = sorted(range(fields), key=lambda f: int(lows[f]))
    for a, b in zip(order, order[1:]):
        if int(highs[a]) >= int(lows[b]):
            return (f"one lookup reads {fields} fields ({name}) from one table with no offsets in the model, and the "
                    f"example ids of columns {a} [{int(lows[a])}, {int(highs[a])}] and {b} [{int(lows[b])}, "
                    f"{int(highs[b])}] overlap; declare each field's rows with table_ranges= to split it")
    chance = chance_disjoint(fields, samples)
    if chance > MAX_CHANCE:
        return (f"one lookup reads {fields} fields ({name}) from one table with no offsets in the model, and "
                f"{samples} example sample(s) are too few to infer each field's rows from data (columns of one "
                f"vocabulary would look disjoint with probability {chance:.2g}); pass a larger example or "
                "calibration batch, or declare each field's rows with table_ranges= to split it")
    if int(lows[order[0]]) < 0 or int(highs[order[-1]]) >= rows:
        return f"the example ids of {name} fall outside the table's {rows} rows"
    # a field's rows run from just above the previous field's largest id to just below the next field's
    # smallest: the unseen rows between two fields belong to both (only one field's ids ever reach them)
    starts = [0] + [int(highs[f]) + 1 for f in order[:-1]]
    stops = [int(lows[f]) for f in order[1:]] + [rows]
    ranges = dict(zip(order, zip(starts, stops)))
    return [ranges[f] for f in range(fields)]
