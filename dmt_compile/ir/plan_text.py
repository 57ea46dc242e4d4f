"""The plan in words, one source for every printer: `str(plan)`, `dmt-compile plan` and the summary.

* `PLAN_COLUMNS` — the column names every plan table uses (the summary adds `ids` and `back`);
* `plan_rows(plan, width)` — one row per tower; feature lists wrap inside their cell, never cut;
* `merged_notes(notes)` — the plan's notes for people: exact repeats merged, per-feature "kept
  together" notes grouped per tower, the same remark about several towers said once;
* `plan_header(plan, where)` — the one line that names the plan (both printers lead with it);
* `plan_details(plan, width)` — what follows the table: dense features, partitioner metrics, notes
  and rebuilt layers, each once, in the same words in `str(plan)` and in the summary.
"""
from __future__ import annotations

import re
import textwrap
from typing import Any

__all__ = ["PLAN_COLUMNS", "PLAN_ALIGN", "plan_rows", "merged_notes", "features_width", "plan_header", "plan_details"]

PLAN_COLUMNS = ("tower", "host", "features", "lookups", "in -> out", "feed", "table elems")
PLAN_ALIGN = ("right", "right", "left", "right", "right", "left", "right")
_KEPT = re.compile(r"^kept together in tower (\d+): (.+) \((.+)\)$")
_PER_TOWER = re.compile(r"^tower (\d+) (.+)$")


def features_width(width: int, other_columns: int = 78) -> int:
    """Columns left for the feature list in a table `width` wide (at least 24)."""
    return max(24, width - other_columns)


def plan_rows(plan: Any, feature_width: int = 34) -> list[list[str]]:
    """The plan table's rows (`PLAN_COLUMNS`); every feature is listed, wrapped at `feature_width`."""
    return [[str(d.index), str(d.host), "\n".join(textwrap.wrap(", ".join(d.features), feature_width)) or "-",
             str(len(d.lookups)), f"{d.width_in} -> {d.width_out}", d.feed, f"{d.table_elements:,}"]
            for d in plan.details]


def merged_notes(notes: tuple[str, ...] | list[str]) -> list[str]:
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
    for reason, where_towers in kept.items():
        where = "; ".join(f"tower {t}: {', '.join(fs)}" for t, fs in sorted(where_towers.items()))
        out.insert(0, f"kept together ({reason}): {where}")
    return out


def plan_header(plan: Any, where: str = "") -> str:
    """`TowerPlan: N towers on topology T (where), partitioner P, M Tower Module c=C, balance max/mean b`;
    `where` names the topology's hardware when the printer knows it (e.g. "dgx-h100"). Fits 120 columns."""
    place = f" ({where})" if where else ""
    tm = ("identity Tower Modules" if plan.tower_module == "identity"
          else f"{plan.tower_module} Tower Module c={plan.compression:g}")
    return (f"TowerPlan: {plan.num_towers} towers on topology {plan.topology}{place}, partitioner {plan.strategy}, "
            f"{tm}, balance max/mean {plan.balance():.3f}")


def plan_details(plan: Any, width: int) -> list[str]:
    """The lines after the plan table, each fact once and wrapped at `width` (never cut)."""
    fill = lambda text: textwrap.fill(text, width, subsequent_indent="    ")  # noqa: E731
    lines = []
    if plan.dense_features:
        lines.append(fill("dense (data-parallel, not in towers): " + ", ".join(plan.dense_features)))
    if plan.metrics:
        lines.append(fill("partitioner: " + ", ".join(f"{k} = {v:.4g}" for k, v in plan.metrics)))
    lines += [fill(f"note: {n}") for n in merged_notes(plan.notes)]
    lines += [fill(f"rebuilt for the compressed width: {r.describe()}") for r in plan.rebuilt]
    return lines
