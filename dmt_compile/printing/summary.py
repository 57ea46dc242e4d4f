"""The short report of a transformed model (`dmt-compile dump`'s and `dmt.dump()`'s default): at most
`width` columns (120 in the library, the terminal's width in the CLI).

It leads with the plan (towers, hosts, every feature: lists wrap, never cut), what each tower
sends across hosts per sample, what was captured and rewritten, the plan's notes in plain words
(repeated notes merged) and the cost model's prediction. The node table and the added modules
are behind `--format full`.
"""
from __future__ import annotations

import math
import re
import textwrap
from collections import Counter
from typing import Any

from tabulate import tabulate

from dmt_compile.ir.graph import tower_nodes
from dmt_compile.ir.meta import DTYPE, SHAPE
from dmt_compile.printing.subject import PrintedModel
from dmt_compile.ir.plan_text import (PLAN_ALIGN, PLAN_COLUMNS, features_width, merged_notes, plan_details, plan_header,
                                      plan_rows)

__all__ = ["format_summary", "plain_notes", "tower_traffic", "fit_line", "WIDTH"]

WIDTH = 120
_ITEMSIZE = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2,
             "int8": 1, "uint8": 1, "bool": 1, "KeyedJaggedTensor": 8, "KeyedTensor": 4}


def plain_notes(notes: tuple[str, ...] | list[str]) -> list[str]:
    """The plan's notes for people (`ir.plan_text.merged_notes`, the one source `str(plan)` uses too)."""
    return merged_notes(notes)


def _bytes_per_sample(node: Any, batch: int) -> float:
    shape, dtype = node.meta.get(SHAPE), node.meta.get(DTYPE) or "float32"
    if not shape:
        return 0.0
    return math.prod(shape) * _ITEMSIZE.get(dtype, 4) / max(batch, 1)


def tower_traffic(dmt: PrintedModel) -> dict[int, tuple[float, float]]:
    """Per tower: (id bytes a sample sends to the tower's host, result bytes it gets back), example inputs."""
    batch = dmt.detection.batch_size
    out = {}
    for t, tn in tower_nodes(dmt.graph_module.graph).items():
        ids = sum(_bytes_per_sample(n, batch) for n in tn.ids_items.values())
        back = sum(_bytes_per_sample(p, batch) for p in tn.payload)
        out[t] = (ids, back)
    return out


def _size(n: float) -> str:
    return f"{n:.0f} B" if n < 10_000 else f"{n / 1024:.1f} KB"


def _plan_table(dmt: PrintedModel, width: int) -> str:
    """The plan table of `str(plan)` (`ir.plan_text`) plus what each tower sends across hosts per sample."""
    plan, traffic = dmt.plan, tower_traffic(dmt)
    rows = [row + [_size(traffic.get(d.index, (0.0, 0.0))[0]), _size(traffic.get(d.index, (0.0, 0.0))[1])]
            for d, row in zip(plan.details, plan_rows(plan, features_width(width, 86)))]
    return tabulate(rows, headers=[*PLAN_COLUMNS, "ids", "back"], tablefmt="simple", disable_numparse=True,
                    colalign=(*PLAN_ALIGN, "right", "right"))


def _captured(dmt: PrintedModel) -> list[str]:
    det, report = dmt.detection, dmt.capture_report
    kinds = Counter(lk.kind for lk in det.lookups)
    tables = {t for lk in det.lookups for t in lk.tables}
    how = {"symbolic": "plain fx tracing", "specialize": "fx tracing with values from the example inputs",
           "specialize+leaf": "fx tracing with values, and helper modules kept as leaves"}.get(report.path, report.path)
    extra = []
    if report.specializations:
        extra.append(f"{len(report.specializations)} Python decisions fixed from the example inputs")
    if report.auto_leaves:
        extra.append("leaves: " + ", ".join(report.auto_leaves))
    lines = [f"captured   {how}" + (f" ({'; '.join(extra)})" if extra else ""),
             f"           {len(det.lookups)} lookups (" + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
             + f") over {len(tables)} tables, {len(det.features)} sparse features"]
    return lines  # dense features: said once, after the plan table (plan_details)


def _rewritten(dmt: PrintedModel) -> list[str]:
    plan = dmt.plan
    feeds = Counter(d.feed for d in plan.details)
    tm = "identity Tower Module (exact)" if plan.tower_module == "identity" else \
        f"{plan.tower_module} Tower Module (compression {plan.compression:g})"
    steps = ["ids_exchange", "lookups", tm, "outputs_exchange"]
    if feeds.get("decoder"):
        steps.append("decoder")
    elif feeds.get("direct"):
        steps.append("direct feed into the interaction")
    added = sorted(name for name, _ in dmt.graph_module.named_children() if name == "dmt")
    modules = [n for root in added for n, _ in dmt.graph_module.get_submodule(root).named_children()]
    return [f"rewritten  each tower: {' -> '.join(steps)}",
            f"           {len(modules)} modules added under dmt. ({', '.join(_kinds(modules))})"]


def _kinds(names: list[str]) -> list[str]:
    counts = Counter(re.sub(r"\d+", "N", n) for n in names)
    return [f"{v} x {k}" for k, v in sorted(counts.items())] or ["none"]


def format_summary(dmt: PrintedModel, cost: str = "", width: int = WIDTH) -> str:
    """The short report (module docstring), at most `width` columns (the CLI passes the terminal's);
    `cost` is the cost-model section, if any. Long lines wrap; nothing is cut."""
    plan, topo = dmt.plan, dmt.topology
    head = plan_header(plan, topo.name or "")
    crossing = (topo.num_hosts - 1) / topo.num_hosts if topo.num_hosts else 0.0
    table = _plan_table(dmt, width)  # already fitted: its feature column wraps inside the cell
    parts = [head, table,
             textwrap.fill(f"in -> out: elements per sample entering and leaving the tower. ids, back: bytes "
                           f"per sample sent to the tower's host and received back (forward; the "
                           f"gradients of what comes back travel in backward); {crossing:.0%} of samples cross "
                           "hosts.", width), "", *_captured(dmt), *_rewritten(dmt)]
    details = plan_details(plan, width)
    if details:
        parts += ["", *details]
    if cost:
        parts += ["", cost]
    parts += ["", "more: --format full (node table, modules added), --format dot [--png FILE], --rank R (one rank)"]
    return "\n".join(fitted for part in parts for line in (part.splitlines() or [""])
                     for fitted in ([line] if part is table else fit_line(line, width))) + "\n"


def fit_line(line: str, width: int) -> list[str]:
    """`line` as it is when it fits, else wrapped under its own indentation plus four spaces (never cut)."""
    if len(line) <= width:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()))
    return textwrap.wrap(line, width, subsequent_indent=indent + "    ", break_on_hyphens=False) or [line]
