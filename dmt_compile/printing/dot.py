"""The DOT picture of a transformed (or lowered) graph, readable at normal size for 26+ features.

Nodes are *groups*, not fx nodes: the inputs are one box; every tower is a cluster (in tower
order, left to right) of at most five boxes, one per role (ids exchange, lookups with their
features, Tower Module, outputs exchange, reassembly or decoder); the rest of the model is one
box per top-level module (`bottom_mlp`, `interaction`, ...) or per pass that added plumbing.
`getitem` plumbing disappears into the box of what it unpacks. A legend explains the colours and
the graph's label carries the plan's summary.
"""
from __future__ import annotations

import textwrap
from typing import Any

import torch.fx as fx

from dmt_compile.ir.meta import FEATURES, FROM_PASS, ROLE, TOWER, Role
from dmt_compile.printing.graph import ROLE_COLOURS, target_name
from dmt_compile.printing.subject import PrintedModel

__all__ = ["to_dot"]

_ROLE_TEXT = {
    Role.IDS_EXCHANGE: "ids exchange (to the tower's host)", Role.LOOKUP: "embedding lookups",
    Role.TOWER_MODULE: "Tower Module", Role.OUTPUTS_EXCHANGE: "outputs exchange (back to sample owners)",
    Role.REASSEMBLE: "reassembly", Role.DECODER: "decoder", Role.FEED: "direct / hierarchical feed",
}
_ORDER = [Role.IDS_EXCHANGE, Role.LOOKUP, Role.TOWER_MODULE, Role.OUTPUTS_EXCHANGE, Role.REASSEMBLE, Role.DECODER,
          Role.FEED]
_DENSE = "#dddddd"


def _quote(text: str) -> str:
    """Labels are built here with DOT's own `\\n` line breaks; only quotes need escaping."""
    return text.replace('"', "'")


def _group_of(n: fx.Node) -> tuple:
    """The box a node is drawn in."""
    if n.op == "placeholder":
        return ("inputs",)
    if n.op == "output":
        return ("output",)
    tower, role = n.meta.get(TOWER), n.meta.get(ROLE)
    if role is None and n.op == "call_function" and n.args and isinstance(n.args[0], fx.Node):
        source = n.args[0].meta.get(ROLE)  # a getitem of an exchange: drawn with the exchange's items
        role = Role.IDS_EXCHANGE if source == Role.IDS_EXCHANGE else role
    if tower is not None:
        return ("tower", tower, Role(role) if role else Role.REASSEMBLE)
    if role is not None:
        return ("role", Role(role))
    if n.op == "call_module":
        return ("module", str(n.target).split(".")[0])
    stack = list((n.meta.get("nn_module_stack") or {}).values())
    if stack:
        return ("module", str(stack[0][0]).split(".")[0])
    if n.meta.get(FROM_PASS):
        return ("pass", n.meta[FROM_PASS])
    return ("module", "forward")


def _wrap(items: list[str], width: int = 34, lines: int = 6) -> str:
    text = textwrap.wrap(", ".join(items), width)
    if len(text) > lines:
        text = text[:lines - 1] + [f"... ({len(items)} in all)"]
    return "\\n".join(text)


def _label(key: tuple, nodes: list[fx.Node], gm: fx.GraphModule, plan: Any = None) -> str:
    kind = key[0]
    if kind == "inputs":
        return f"inputs ({len(nodes)})\\n" + _wrap([n.name for n in nodes])
    if kind == "output":
        return "output"
    if kind == "tower":
        role = key[2]
        if role == Role.LOOKUP:
            feats = [f for n in nodes for f in (n.meta.get(FEATURES) or ())]
            if not feats:  # lowered: one host-local lookup exchange, unpacked per table
                return f"host-local lookups\\n{len(nodes) - 1} tables"
            return f"{len(nodes)} lookups\\n" + _wrap(list(dict.fromkeys(feats)), 22)
        if role == Role.FEED:  # the feed the plan chose for this tower (direct or hierarchical)
            if plan is not None and key[1] < len(plan.details):
                return f"{plan.details[key[1]].feed} feed"
            return "feed"
        if role == Role.TOWER_MODULE and plan is not None and key[1] < len(plan.details):
            d = plan.details[key[1]]
            return f"Tower Module\\n{plan.tower_module}: {d.width_in} -> {d.width_out}"
        return _ROLE_TEXT[role].split(" (")[0]
    if kind == "role":
        return _ROLE_TEXT.get(key[1], str(key[1]))
    ops = [n for n in nodes if not (n.op == "call_function" and "getitem" in target_name(n))]
    name = key[1] if kind == "module" else f"added by {key[1]}"
    return f"{name}\\n({len(ops)} ops)" if len(ops) > 1 else name


def _colour(key: tuple) -> str:
    if key[0] == "tower":
        return ROLE_COLOURS.get(key[2], "#ffffff")
    if key[0] == "role":
        return ROLE_COLOURS.get(key[1], "#ffffff")
    return "#ffffff" if key[0] in ("inputs", "output") else _DENSE


def _ident(key: tuple) -> str:
    return "g_" + "_".join(str(k) for k in key).replace(".", "_").replace("-", "_")


def _legend() -> list[str]:
    lines = ["  subgraph cluster_legend {", '    label="legend"; fontsize=10; style=dashed; color="#999999";']
    prev = None
    for role in _ORDER:
        name = f"legend_{role.value}"
        lines.append(f'    "{name}" [label="{_ROLE_TEXT[role]}", style=filled, fillcolor="{ROLE_COLOURS[role]}"];')
        if prev:
            lines.append(f'    "{prev}" -> "{name}" [style=invis];')
        prev = name
    lines.append(f'    "legend_dense" [label="rest of the model (data-parallel)", style=filled, fillcolor="{_DENSE}"];')
    lines.append(f'    "{prev}" -> "legend_dense" [style=invis];')
    lines.append("  }")
    return lines


def to_dot(gm: fx.GraphModule, title: str = "dmt", summary: str = "", plan: Any = None) -> str:
    """DOT text (module docstring); the label is `summary` (else `title`); `plan` adds hosts and widths."""
    groups: dict[tuple, list[fx.Node]] = {}
    of: dict[fx.Node, tuple] = {}
    for n in gm.graph.nodes:
        key = _group_of(n)
        of[n] = key
        groups.setdefault(key, []).append(n)
    label = _quote(summary or title)
    lines = [f'digraph "{_quote(title)}" {{', "  rankdir=TB; newrank=true; nodesep=0.25; ranksep=0.35;",
             f'  label="{label}"; labelloc=t; fontsize=14; fontname="Helvetica";',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10, fillcolor="#ffffff"];',
             "  edge [color=\"#555555\", arrowsize=0.6];"]
    towers = sorted({k[1] for k in groups if k[0] == "tower"})
    for t in towers:
        keys = sorted((k for k in groups if k[0] == "tower" and k[1] == t), key=lambda k: _ORDER.index(k[2]))
        lines.append(f"  subgraph cluster_tower{t} {{")
        host = f" on host {plan.details[t].host}" if plan is not None and t < len(plan.details) else ""
        lines.append(f'    label="tower {t}{host}"; fontsize=12; style=rounded; color="#264653";')
        lines += [f'    "{_ident(k)}" [label="{_quote(_label(k, groups[k], gm, plan))}", fillcolor="{_colour(k)}"];'
                  for k in keys]
        lines.append("  }")
    for key, nodes in groups.items():
        if key[0] != "tower":
            lines.append(f'  "{_ident(key)}" [label="{_quote(_label(key, nodes, gm))}", fillcolor="{_colour(key)}"];')
    edges = dict.fromkeys((of[a], of[n]) for n in gm.graph.nodes for a in n.all_input_nodes if of[a] != of[n])
    lines += [f'  "{_ident(a)}" -> "{_ident(b)}";' for a, b in edges]
    firsts = [_ident(min((k for k in groups if k[0] == "tower" and k[1] == t), key=lambda k: _ORDER.index(k[2])))
              for t in towers]
    if len(firsts) > 1:  # towers side by side, in order
        lines.append("  { rank=same; " + " ".join(f'"{f}";' for f in firsts) + " }")
        lines += [f'  "{a}" -> "{b}" [style=invis];' for a, b in zip(firsts, firsts[1:])]
    lines += _legend()
    lines.append("}")
    return "\n".join(lines) + "\n"


def summary_label(dmt: PrintedModel) -> str:
    """One or two lines for the picture's label: towers, topology, Tower Module."""
    plan, topo = dmt.plan, dmt.topology
    tm = "identity Tower Modules" if plan.tower_module == "identity" else \
        f"{plan.tower_module} Tower Modules, compression {plan.compression:g}"
    return (f"{plan.num_towers} towers on {topo.name or plan.topology} ({topo.num_hosts} hosts x {topo.local_size}), "
            f"{tm}, partitioner {plan.strategy}")
