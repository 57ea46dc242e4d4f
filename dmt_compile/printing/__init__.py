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
from dmt_compile.printing.summary import format_summary, plain_notes, tower_traffic

__all__ = ["format_graph", "format_compact", "format_modules", "to_dot", "to_json", "render", "target_name",
           "format_summary", "plain_notes", "tower_traffic", "unpacked_items", "ROLE_COLOURS", "FORMATS"]

FORMATS = ("summary", "full", "table", "code", "dot", "json")


def _cost(dmt: PrintedModel) -> str:
    from dmt_compile.partition.plan_cost import format_plan_cost

    return format_plan_cost(dmt.plan, dmt.detection, dmt.topology)


def render(dmt: PrintedModel, fmt: str = "table") -> str:
    """Render a transformed model (`DmtModel`) as summary, full (= table), code, dot or json."""
    gm = dmt.graph_module
    if fmt == "summary":
        return format_summary(dmt, _cost(dmt))
    if fmt in ("table", "full"):
        parts = [str(dmt.capture_report), "", str(dmt.plan), "", _cost(dmt), "", format_graph(gm, fold=True)]
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
