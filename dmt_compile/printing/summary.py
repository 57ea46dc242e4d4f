"""The short report of a transformed model (`dmt-compile dump`'s default): at most 120 columns.

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

__all__ = ["format_summary", "plain_notes", "tower_traffic", "WIDTH"]

WIDTH = 120
_ITEMSIZE = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2,
             "int8": 1, "uint8": 1, "bool": 1, "KeyedJaggedTensor": 8, "KeyedTensor": 4}
_KEPT = re.compile(r"^kept together in tower (\d+): (.+) \((.+)\)$")
_PER_TOWER = re.compile(r"^tower (\d+) (.+)$")  # the same remark about several towers: said once


def plain_notes(notes: tuple[str, ...] | list[str]) -> list[str]:
    """The plan's notes for people: exact repeats merged, per-feature and per-tower notes grouped."""
    kept: dict[str, dict[int, list[str]]] = {}
    towers: dict[str, list[str]] = {}  # remark -> towers it is about, in order of first mention
    out: list[str] = []
    for note in dict.fromkeys(notes):
        m = _KEPT.match(note)
        if m:
            reason = re.sub(r"the ids of \S+", "the same ids", m.group(3))
            kept.setdefault(reason, {}).setdefault(int(m.group(1)), []).append(m.group(2))
            continue
        m = _PER_TOWER.match(note)
        if m:
            if m.group(2) not in towers:
                out.append(m.group(2))  # placeholder: replaced below, keeps the notes' order
            towers.setdefault(m.group(2), []).append(m.group(1))
            continue
        out.append(note)
    out = [(f"tower {towers[n][0]} {n}" if len(towers[n]) == 1 else f"towers {', '.join(towers[n])}: each {n}")
           if n in towers else n for n in out]
    for reason, towers in kept.items():
        where = "; ".join(f"tower {t}: {', '.join(fs)}" for t, fs in sorted(towers.items()))
        out.insert(0, f"kept together ({reason}): {where}")
    return out


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


def _plan_table(dmt: PrintedModel) -> str:
    plan, traffic = dmt.plan, tower_traffic(dmt)
    rows = []
    for d in plan.details:
        ids, back = traffic.get(d.index, (0.0, 0.0))
        rows.append([d.index, d.host, "\n".join(textwrap.wrap(", ".join(d.features), 34)) or "-", len(d.lookups),
                     f"{d.width_in} -> {d.width_out}", d.feed, f"{d.table_elements:,}", _size(ids), _size(back)])
    return tabulate(rows, headers=["tower", "host", "features", "lookups", "in -> out", "feed", "table elems",
                                   "ids", "back"], tablefmt="simple", disable_numparse=True,
                    colalign=("right", "right", "left", "right", "right", "left", "right", "right", "right"))


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
    if det.dense_features:
        lines.append("           dense (data-parallel, not in towers): " + ", ".join(det.dense_features))
    return lines


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


def format_summary(dmt: PrintedModel, cost: str = "") -> str:
    """The short report (module docstring); `cost` is the cost-model section, if any."""
    plan, topo = dmt.plan, dmt.topology
    name = topo.name or f"{topo.num_hosts}x{topo.local_size}"
    head = (f"TowerPlan: {plan.num_towers} towers on topology {plan.topology} ({name}, {topo.world_size} ranks), "
            f"partitioner {plan.strategy}, balance max/mean {plan.balance():.3f}")
    crossing = (topo.num_hosts - 1) / topo.num_hosts if topo.num_hosts else 0.0
    parts = [head, _plan_table(dmt),
             textwrap.fill(f"in -> out: elements per sample entering and leaving the tower. ids, back: bytes "
                           f"per sample sent to the tower's host and received back (forward; the "
                           f"gradients of what comes back travel in backward); {crossing:.0%} of samples cross "
                           "hosts.", WIDTH), "", *_captured(dmt), *_rewritten(dmt)]
    notes = plain_notes(plan.notes)
    metrics = [f"{k} = {v:.4g}" for k, v in plan.metrics]
    if metrics:
        parts += ["", "partitioner: " + ", ".join(metrics)]
    if notes:
        parts += ["", "notes:"] + [textwrap.fill(n, WIDTH, initial_indent="  - ", subsequent_indent="    ")
                                   for n in notes]
    if plan.rebuilt:
        parts += ["", "rebuilt for the compressed width (hierarchical feed):"] + [
            textwrap.fill(r.describe(), WIDTH, initial_indent="  - ", subsequent_indent="    ") for r in plan.rebuilt]
    if cost:
        parts += ["", cost]
    parts += ["", "more: --format full (node table, modules added), --format dot [--png FILE], --rank R (one rank)"]
    return "\n".join(_fit(line) for part in parts for line in (part.splitlines() or [""])) + "\n"


def _fit(line: str) -> str:
    return line if len(line) <= WIDTH else textwrap.shorten(line, WIDTH, placeholder=" ...")
