"""The one deterministic printer of transformed models: summary, full table, compact, code, DOT, JSON.

* `summary` (the CLI's default) — the plan, what crosses hosts, what was captured and rewritten,
  notes in plain words and the predicted cost, within 120 columns (`printing/summary.py`);
* `full` (alias `table`) — the capture report, the plan, the cost, the node table with `getitem`
  plumbing folded, and the added modules (`printing/graph.py`);
* `code`, `dot` (a readable picture, `printing/dot.py`), `json` (sorted keys).
"""
from __future__ import annotations

from dmt_compile.errors import InputError
from dmt_compile.printing.dot import summary_label, to_dot
from dmt_compile.printing.graph import (ROLE_COLOURS, format_compact, format_graph, format_modules, target_name,
                                        to_json, unpacked_items)
from dmt_compile.printing.subject import PrintedModel
from dmt_compile.printing.summary import WIDTH, fit_line, format_summary, plain_notes, tower_traffic

__all__ = ["format_graph", "format_compact", "format_modules", "to_dot", "to_json", "render", "target_name",
           "format_summary", "plain_notes", "tower_traffic", "unpacked_items", "ROLE_COLOURS", "FORMATS", "fit_line",
           "terminal_width"]

FORMATS = ("summary", "full", "table", "code", "dot", "json")


def terminal_width(default: int = WIDTH) -> int:
    """Columns of the terminal the CLI prints to (COLUMNS, else the terminal, else `default`), 60-240."""
    import shutil

    return max(60, min(240, shutil.get_terminal_size((default, 24)).columns))


def _cost(dmt: PrintedModel, width: int) -> str:
    from dmt_compile.partition.plan_cost import format_plan_cost

    return format_plan_cost(dmt.plan, dmt.detection, dmt.topology, width=width)


def render(dmt: PrintedModel, fmt: str = "summary", width: int = WIDTH) -> str:
    """Render a transformed model (`DmtModel`) as summary (default), full (= table), code, dot or json;
    `summary` and `full` keep to `width` columns where they can (the CLI passes the terminal's width)."""
    gm = dmt.graph_module
    if fmt == "summary":
        return format_summary(dmt, _cost(dmt, width), width)
    if fmt in ("table", "full"):
        parts = [str(dmt.capture_report), "", dmt.plan.format(width), "", _cost(dmt, width), "",
                 format_graph(gm, fold=True)]
        mods = format_modules(gm)
        if mods:
            parts += ["", "modules added:", mods]
        return "\n".join(parts) + "\n"
    if fmt == "code":
        return "\n".join(line.rstrip() for line in gm.code.strip().splitlines()) + "\n"
    if fmt == "dot":
        return to_dot(gm, "dmt", summary_label(dmt), dmt.plan)
    if fmt == "json":
        return to_json(gm, dmt.plan)
    raise InputError(f"unknown dump format {fmt!r}", f"choose one of: {', '.join(FORMATS)}")
