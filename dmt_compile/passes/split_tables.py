"""split-tables: one table per field for a concatenated table looked up with per-field offsets.

Many CTR libraries keep ONE `nn.Embedding(sum(vocab), D)` for all fields and look up `[B, F]` ids
in one call after an affine per-field remap whose constants the graph holds:

* offsets (a buffer, a constant, a numpy array on the module): row = id + off_f, field f owns the
  contiguous rows `[off_f, next offset)`;
* interleaved field-aware hashing: row = id * F + f, field f owns rows f, f + F, f + 2F, ...

This pass replaces such a lookup `emb(remap(X))` by

    torch.stack([emb_f(check_field_ids(X[:, f], 0, rows_f)) for f in range(F)], dim=1)

with `emb_f` a new table holding field f's rows (`dmt.split_<table>_f<f>`), exact in identity
mode; the original table is removed and `TableSplits` records where each piece came from. Every
lookup of the table must use the same remap (the field-aware idiom — F tables each looked up by
every field — splits each table the same way), and the example inputs must fall in each field's
rows. Where the ids arrive pre-offset in the input, `table_ranges=` declares each field's rows;
the ids are then checked against them at run time. Other tables stay whole; `TableSplits.notes`
says why when one lookup reads several fields.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.fx as fx

from dmt_compile.errors import PlanError
from dmt_compile.ir.constants import Constants
from dmt_compile.ir.graph import is_impure, tag
from dmt_compile.ir.id_sources import atoms_of
from dmt_compile.ir.lookups import classify_lookup, id_nodes
from dmt_compile.ir.meta import DTYPE, INPUT_PATH, SHAPE
from dmt_compile.ir.module_paths import split_table
from dmt_compile.ir.table_splits import TablePiece, TableSplit, TableSplits, check_field_ids
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.passes.option_field import option
from dmt_compile.passes.table_ranges import DECLARED, INFERRED, example_values, inferred_ranges, normalize_ranges

__all__ = ["SplitTables"]

_ADDS = (operator.add, torch.add)
_MULS = (operator.mul, torch.mul)
_CASTS = ("long", "int", "to", "type")


def _strip_casts(node: fx.Node) -> fx.Node:
    while node.op == "call_method" and node.target in _CASTS and isinstance(node.args[0], fx.Node):
        node = node.args[0]
    return node


def _is_call(node: Any, functions: tuple, method: str) -> bool:
    return isinstance(node, fx.Node) and len(node.args) == 2 and not node.kwargs and (
        (node.op == "call_function" and node.target in functions) or (node.op == "call_method" and node.target == method))


@dataclass
class _Use:
    node: fx.Node  # the lookup
    columns: fx.Node  # X: the [B, F] per-field ids
    scale: int = 1  # row = id * scale + offset_f
    offsets: tuple[int, ...] | None = None  # None: declared ranges (ids pre-offset)


def _range_gather(constants: Constants, ids: fx.Node) -> tuple[fx.Node, int] | None:
    """`(i, k)` when `ids` is `R[i]` with `R` a constant 1-D integer tensor equal to `arange(k, k + len(R))`.

    Such a gather is a shift by `k` (an index outside `R` fails in both): embedding helpers that map each
    field's ids through an index buffer built from consecutive ranges (discrete-continuous-embed-readout's
    `discrete_indices[ids + offsets]` under tab-transformer-pytorch) look up rows `X + c + k`."""
    node = _strip_casts(ids)
    gather = (node.op == "call_method" and node.target == "__getitem__") or (
        node.op == "call_function" and node.target is operator.getitem)
    if not gather or len(node.args) != 2 or node.kwargs or not isinstance(node.args[1], fx.Node):
        return None
    table = constants.value(node.args[0])
    if not isinstance(table, torch.Tensor) or table.dim() != 1 or not table.numel() or table.is_floating_point() \
            or table.dtype == torch.bool:
        return None
    k = int(table[0])
    if not torch.equal(table, torch.arange(k, k + table.numel(), dtype=table.dtype, device=table.device)):
        return None
    return node.args[1], k


def _affine_use(gm: fx.GraphModule, lookup: fx.Node, ids: fx.Node) -> _Use | None:
    """`X + c` or `X * k + c` with constant per-field `c` (and int `k`), possibly gathered through a constant
    shifted range (`_range_gather`), else None (constants: `ir.constants`)."""
    constants = Constants(gm)
    shift = 0
    gathered = _range_gather(constants, ids)
    if gathered is not None:
        ids, shift = gathered
    add = _strip_casts(ids)
    if not _is_call(add, _ADDS, "add"):
        return None
    for x, c in (add.args, add.args[::-1]):
        value = constants.value(c) if isinstance(x, fx.Node) and not constants.is_constant(x) else None
        base, scale = x, 1
        if _is_call(x, _MULS, "mul"):
            for a, k in (x.args, x.args[::-1]):
                k = constants.value(k) if isinstance(a, fx.Node) else None
                if isinstance(k, int) and not isinstance(k, bool) and k > 1:
                    base, scale = a, k
        shape = base.meta.get(SHAPE) if isinstance(base, fx.Node) else None
        if isinstance(value, torch.Tensor) and shape and len(shape) == 2 and shape[1] >= 2 \
                and not value.is_floating_point() and value.numel() == shape[1]:
            return _Use(lookup, base, scale, tuple(int(v) + shift for v in value.reshape(-1)))
    return None


def _pieces(use: _Use, rows: int) -> list[tuple[int, int, int]] | None:
    """(start, stop, step) per field for the remap of `use`, or None when fields would overlap."""
    offsets = use.offsets
    if len(set(offsets)) != len(offsets) or min(offsets) < 0:
        return None
    if use.scale == 1:
        ordered = sorted(offsets) + [rows]
        if max(offsets) >= rows:
            return None
        return [(o, ordered[ordered.index(o) + 1], 1) for o in offsets]
    if max(offsets) >= use.scale:
        return None
    return [(o, rows, use.scale) for o in offsets]


class _Tables:
    """Every lookup of every table, and whether a table is read by anything that is not a lookup."""

    def __init__(self, gm: fx.GraphModule):
        self.lookups: dict[str, list[tuple[fx.Node, Any]]] = {}
        self.module_of: dict[str, str | None] = {}
        lookup_nodes = set()
        for n in gm.graph.nodes:
            kind = classify_lookup(gm, n)
            if kind is not None and kind.kind in ("embedding", "functional_embedding"):
                self.lookups.setdefault(kind.tables[0], []).append((n, kind))
                self.module_of[kind.tables[0]] = n.target if n.op == "call_module" else None
                lookup_nodes.add(n)
        self.other_use = {t for t in self.lookups for n in gm.graph.nodes if n.op == "get_attr" and n.target == t
                          and any(u not in lookup_nodes for u in n.users)}


def _new_table(gm: fx.GraphModule, source: fx.Node, weight: torch.Tensor, start: int, stop: int,
               step: int) -> torch.nn.Embedding:
    module = gm.get_submodule(source.target) if source.op == "call_module" else None
    get = (lambda k: getattr(module, k, None)) if module is not None else source.kwargs.get
    rows = range(start, stop, step)
    padding = get("padding_idx")
    table = torch.nn.Embedding(len(rows), weight.shape[1],
                               padding_idx=rows.index(padding) if padding is not None and padding in rows else None,
                               max_norm=get("max_norm"), scale_grad_by_freq=bool(get("scale_grad_by_freq")),
                               sparse=bool(get("sparse")))
    table.weight = torch.nn.Parameter(weight.detach()[start:stop:step].clone(), requires_grad=weight.requires_grad)
    return table


def _display(node: fx.Node) -> str:
    return node.meta.get(INPUT_PATH, node.name)


@dataclass(frozen=True)
class SplitTables(Pass):
    name = "split-tables"
    produces = (TableSplits,)

    option_error = PlanError

    table_ranges: Mapping[str, Any] | None = field(default=None, metadata=option(
        "per-field row ranges of concatenated tables whose ids arrive pre-offset: {table: [rows per field]} "
        "or {table: [(start, stop) per field]}", default_text="none declared (inferred where they can be)",
        example={"embedding": [10, 20, 30]}))

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        tables = _Tables(gm)
        declared = normalize_ranges(self.table_ranges, gm, tables.lookups)
        splits, notes = [], []
        for table, lookups in tables.lookups.items():
            fixed = [n for n, _ in lookups if _constant_ids(gm, n) is not None]
            fielded = [(n, k) for n, k in lookups if n not in fixed] or lookups
            outcome = self._plan(gm, ctx, table, fielded, declared.get(table), tables.other_use)
            if not isinstance(outcome, str) and fixed and len(fielded) < len(lookups):
                outcome = _below_fixed_rows(gm, ctx, table, outcome, fixed, lookups[0][1].rows)
            if isinstance(outcome, str):
                notes += [outcome] if outcome else []
                continue
            uses, pieces, source, *fixed_rows = outcome
            splits.append(self._apply(gm, table, uses, pieces, source, lookups[0][1].rows, *fixed_rows))
        if splits:
            gm.graph.eliminate_dead_code(is_impure_node=is_impure)
            for split in splits:
                _drop_table(gm, split.table, tables.module_of[split.table])
        return PassResult(gm, bool(splits), (TableSplits(tuple(splits), tuple(notes)),))

    @staticmethod
    def _plan(gm, ctx, table, lookups, declared, other_use):
        """(uses, pieces, source) to split `table`, or a note (possibly empty) why it stays whole."""
        rows = lookups[0][1].rows
        if declared is None and not any(len(n.meta.get(SHAPE) or ()) == 3 for n, _ in lookups):
            return ""
        why, source = f"table {table} stays whole", DECLARED
        if table in other_use:
            return f"{why}: it is also read outside its lookups"
        ids = [id_nodes(n, kind.id_args)[0] for n, kind in lookups]
        affine = [_affine_use(gm, n, i) for (n, _), i in zip(lookups, ids)] if declared is None else [None]
        if declared is None and any(u is None for u in affine):
            # the inputs whose values reach the ids (column picks through concatenations and identities
            # count the columns picked, not every input the concatenation holds: ids cut from
            # cat((categorical, numeric), 1) come from the categorical input alone)
            cache: dict = {}
            inputs = {name for i in ids for name, _ in atoms_of(i, cache)}
            if len(inputs) != 1:  # e.g. ids + offsets given as another input: no single pre-offset id matrix
                n = lookups[[u is None for u in affine].index(True)][0]
                return (f"{why}: lookup {n.name} computes its ids from {len(inputs)} inputs "
                        f"({', '.join(sorted(inputs))}), not from one pre-offset id matrix; declare each field's "
                        "rows with table_ranges= to split it")
            declared = inferred_ranges(gm, ctx, [_strip_casts(i) for i in ids], rows)
            if isinstance(declared, str):
                return f"{why}: {declared}"
            source = INFERRED
        if declared is not None:
            uses = [_Use(n, _strip_casts(i)) for (n, _), i in zip(lookups, ids)]
            pieces, source = [(a, b, 1) for a, b in declared], source if source == INFERRED else DECLARED
        else:
            uses = affine
            remaps = {(u.scale, u.offsets) for u in uses}
            pieces = _pieces(uses[0], rows) if len(remaps) == 1 else None
            if pieces is None:
                return f"{why}: its lookups remap the fields' ids differently or onto overlapping rows {sorted(remaps)}"
            source = "offsets in the graph" if uses[0].scale == 1 else "interleaved ids in the graph"
        widths = {u.columns.meta.get(SHAPE, (0, 0))[-1] for u in uses}
        if widths != {len(pieces)}:
            raise PlanError(f"table_ranges for {table} lists {len(pieces)} fields but its lookups read "
                            f"{sorted(widths)} ids per sample", "give one (start, stop) range per field")
        problem = _example_problem(gm, ctx, uses, pieces, declared is not None)
        if problem and source == DECLARED:
            raise PlanError(f"table_ranges for {table}: {problem}", "declare ranges the ids of each field fall in")
        return f"{why}: {problem}" if problem else (uses, pieces, source)

    def _apply(self, gm, table, uses, pieces, source, rows, fixed=()) -> TableSplit:
        weight = gm.get_parameter(table)
        key = re.sub(r"\W", "_", table.removesuffix(".weight"))
        paths = []
        for f, (start, stop, step) in enumerate(pieces):
            paths.append(split_table(key, f))
            gm.add_submodule(paths[-1], _new_table(gm, uses[0].node, weight, start, stop, step))
        declared = source in (DECLARED, INFERRED)
        for use in uses:
            self._rewrite(gm, use, pieces, paths, table, declared, source == INFERRED)
        features = [f"{_display(uses[0].columns)}[:,{f}]" for f in range(len(pieces))]
        if fixed:  # the rows read with constant ids: one more table, looked up with the ids shifted to it
            start = pieces[-1][1]
            pieces, paths = [*pieces, (start, rows, 1)], [*paths, split_table(key, len(pieces))]
            gm.add_submodule(paths[-1], _new_table(gm, fixed[0], weight, start, rows, 1))
            for node in fixed:
                with gm.graph.inserting_before(node):
                    ids = tag(gm.graph.call_function(operator.sub, (node.args[0], start)), self.name)
                    new = tag(gm.graph.call_module(paths[-1], (ids,)), self.name)
                node.replace_all_uses_with(new)
                gm.graph.erase_node(node)
            features.append("(rows read with constant ids)")
        return TableSplit(table, tuple(TablePiece(f"{p}.weight", a, b, feat, s) for p, (a, b, s), feat
                                       in zip(paths, pieces, features)), source, rows,
                          _shared_gaps(weight, pieces))

    def _rewrite(self, gm, use: _Use, pieces, paths, table, declared: bool, source_inferred: bool = False) -> None:
        graph, node = gm.graph, use.node
        embs = []
        with graph.inserting_before(node):
            for f, ((start, stop, step), path) in enumerate(zip(pieces, paths)):
                col = tag(graph.call_function(operator.getitem, (use.columns, (slice(None), f))), self.name)
                if use.columns.meta.get(DTYPE) not in ("int64", "int32"):
                    col = tag(graph.call_method("long", (col,)), self.name)
                lo, hi = (start, stop) if declared else (0, len(range(start, stop, step)))
                feature = f"{_display(use.columns)}[:,{f}]"
                check = (col, lo, hi, feature, table) + ((True,) if source_inferred else ())
                col = tag(graph.call_function(check_field_ids, check), self.name)
                if declared and start:
                    col = tag(graph.call_function(operator.sub, (col, start)), self.name)
                embs.append(tag(graph.call_module(path, (col,)), self.name))
            out = tag(graph.call_function(torch.stack, (embs,), {"dim": 1}), self.name)
        node.replace_all_uses_with(out)
        graph.erase_node(node)


def _constant_ids(gm: fx.GraphModule, lookup: fx.Node) -> torch.Tensor | None:
    """The ids of an `nn.Embedding` module call whose ids are a constant of the graph, else None."""
    if lookup.op != "call_module" or len(lookup.args) != 1 or lookup.kwargs:
        return None
    value = Constants(gm).value(lookup.args[0])
    return value if isinstance(value, torch.Tensor) and value.numel() and not value.is_floating_point() else None


def _below_fixed_rows(gm, ctx, table: str, outcome: tuple, fixed: list[fx.Node], rows: int) -> tuple | str:
    """A table whose fields are looked up with offsets and whose other rows are read with constant ids
    (tab-transformer-pytorch's FT-Transformer keeps its numeric features' embeddings in the rows after the
    categories): the fields' pieces end where the constant rows begin, and those rows become one more
    piece. A note instead when the constant rows do not all lie above every field's offset."""
    uses, pieces, source = outcome
    low = min(int(_constant_ids(gm, n).min()) for n in fixed)
    why = f"table {table} stays whole: it is also looked up with constant ids"
    if source != "offsets in the graph":
        return f"{why} and its fields' rows are {source}, not offsets in the graph"
    if any(start >= low for start, _, _ in pieces) or sorted(pieces) != pieces:
        return f"{why} (rows from {low}) that do not lie above every field's offset rows"
    clipped = [(start, min(stop, low), step) for start, stop, step in pieces]
    problem = _example_problem(gm, ctx, uses, clipped, False)
    return f"{why}: {problem}" if problem else (uses, clipped, source, fixed)


def _shared_gaps(weight: torch.Tensor, pieces) -> tuple[tuple[int, torch.Tensor], ...]:
    """(start, initial rows) of every row block two contiguous pieces both hold (inferred ranges)."""
    spans = sorted((a, b) for a, b, step in pieces if step == 1)
    return tuple((a1, weight.detach()[a1:b0].clone()) for (_, b0), (a1, _) in zip(spans, spans[1:]) if a1 < b0)


def _example_problem(gm, ctx, uses: list[_Use], pieces, declared: bool) -> str:
    """Why the example ids do not fit the fields' rows, or "" when they do."""
    values = example_values(gm, [u.columns for u in uses], ctx.flat_inputs)
    for use in uses:
        x = values[use.columns]
        for f, (start, stop, step) in enumerate(pieces):
            lo, hi = (start, stop) if declared else (0, len(range(start, stop, step)))
            col = x[:, f]
            if col.numel() and (int(col.min()) < lo or int(col.max()) >= hi):
                return (f"the example ids of {_display(use.columns)}[:,{f}] span [{int(col.min())}, {int(col.max())}], "
                        f"outside the field's rows [{lo}, {hi})")
    return ""


def _drop_table(gm: fx.GraphModule, table: str, module_path: str | None) -> None:
    """Remove the original table (or its module) from the graph module once nothing reads it."""
    target = module_path if module_path is not None else table
    used = any(n.op in ("call_module", "get_attr") and (n.target == target or str(n.target).startswith(target + "."))
               for n in gm.graph.nodes)
    if not used:
        owner, _, leaf = target.rpartition(".")
        delattr(gm.get_submodule(owner) if owner else gm, leaf)


# ----------------------------------------------------------------------------- declared ranges (table_ranges=)
