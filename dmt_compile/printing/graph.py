"""Deterministic text of a graph: the node table, the compact listing, added modules, JSON.

`format_graph` is a fixed-column table (tabulate "simple") with qualified target names, `%node`
arguments, example shapes and the `dmt.tower` / `dmt.role` annotations; no memory addresses, no
file paths. With `fold=True` the `getitem` plumbing (a tuple unpacked item by item) is folded
into the row of the node it unpacks. `format_compact` is the golden tests' format; `to_json`
has sorted keys.
"""
from __future__ import annotations

import json
import operator
import textwrap
from typing import Any

import torch
import torch.fx as fx
from tabulate import tabulate

from dmt_compile.ir.meta import ROLE, SHAPE, TOWER, Role

__all__ = ["format_graph", "format_compact", "format_modules", "to_json", "target_name", "ROLE_COLOURS",
           "unpacked_items"]

_MODULE_ALIASES = {
    "_operator": "operator", "torch.functional": "torch", "torch._C._nn": "F", "torch.nn.functional": "F",
    "dmt_compile.ir.boundary": "dmt", "dmt_compile.ir.torchrec_ops": "dmt", "torch._C._VariableFunctions": "torch",
    "builtins": "", "torch._tensor": "torch.Tensor",
}
ROLE_COLOURS = {
    Role.IDS_EXCHANGE: "#f4a261", Role.OUTPUTS_EXCHANGE: "#e76f51", Role.LOOKUP: "#2a9d8f",
    Role.TOWER_MODULE: "#e9c46a", Role.REASSEMBLE: "#a8dadc", Role.DECODER: "#b5838d", Role.FEED: "#cdb4db",
}
MAX_ARG_CHARS = 120


def target_name(node: fx.Node, gm: fx.GraphModule | None = None) -> str:
    if node.op == "call_module":
        cls = type(gm.get_submodule(node.target)).__name__ if gm is not None else "?"
        return f"{node.target} [{cls}]"
    if node.op == "call_method":
        return f".{node.target}"
    if node.op in ("get_attr", "placeholder", "output"):
        return str(node.target)
    fn = node.target
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", str(fn))
    if module.startswith("torch") and hasattr(torch, name) and getattr(torch, name) is fn:
        module = "torch"
    module = _MODULE_ALIASES.get(module, module)
    return f"{module}.{name}" if module else name


def _fmt(arg: Any) -> str:
    if isinstance(arg, fx.Node):
        return f"%{arg.name}"
    if isinstance(arg, (list, tuple)):
        inner = ", ".join(_fmt(a) for a in arg)
        return f"[{inner}]" if isinstance(arg, list) else f"({inner}{',' if len(arg) == 1 else ''})"
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{k!r}: {_fmt(v)}" for k, v in arg.items()) + "}"
    if isinstance(arg, slice):
        parts = ["" if v is None else str(v) for v in (arg.start, arg.stop, arg.step)]
        return ":".join(parts[:2] if arg.step is None else parts)
    if isinstance(arg, torch.dtype):
        return str(arg)
    if isinstance(arg, torch.Tensor):
        return f"tensor{tuple(arg.shape)}"
    if arg is Ellipsis:
        return "..."
    return repr(arg)


def _args(node: fx.Node, limit: int = MAX_ARG_CHARS) -> str:
    parts = [_fmt(a) for a in node.args] + [f"{k}={_fmt(v)}" for k, v in node.kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 5] + " ...)"


def unpacked_items(gm: fx.GraphModule) -> dict[fx.Node, list[fx.Node]]:
    """Nodes whose every user is `getitem(node, int)`: node -> those getitems, by index (the plumbing)."""
    out = {}
    for n in gm.graph.nodes:
        users = list(n.users)
        if len(users) > 1 and all(u.op == "call_function" and u.target is operator.getitem
                                  and isinstance(u.args[1], int) for u in users):
            out[n] = sorted(users, key=lambda u: u.args[1])
    return out


def _span(items: list[fx.Node]) -> str:
    names = [u.name for u in items]
    return ", ".join(names) if len(names) <= 3 else f"{names[0]} .. {names[-1]}"


def format_graph(gm: fx.GraphModule, fold: bool = False, arg_chars: int = MAX_ARG_CHARS) -> str:
    """The node table; `fold=True` folds getitem plumbing into the unpacked node's row."""
    folded = unpacked_items(gm) if fold else {}
    hidden = {u for items in folded.values() for u in items}
    rows = []
    for i, n in enumerate(gm.graph.nodes):
        if n in hidden:
            continue
        shape = n.meta.get(SHAPE)
        tower = n.meta.get(TOWER)
        shape_text = "" if shape is None else "x".join(str(s) for s in shape) or "scalar"
        if n in folded:
            shape_text = f"{len(folded[n])} items: {_span(folded[n])}"
        rows.append([
            i, n.name, n.op, target_name(n, gm), _args(n, arg_chars), shape_text,
            "" if tower is None else tower, n.meta.get(ROLE, ""),
        ])
    return tabulate(rows, headers=["#", "node", "op", "target", "args", "shape", "tower", "role"],
                    tablefmt="simple", disable_numparse=True)


def format_compact(gm: fx.GraphModule, width: int = 120) -> str:
    """One line per node, `name = target(args)`, with `# shape tower role` on the right; at most `width` columns.

    Placeholders are listed on one line and the output last; long argument lists are clipped.
    """
    inputs = ", ".join(n.name for n in gm.graph.nodes if n.op == "placeholder")
    lines = textwrap.wrap("inputs: " + inputs, width, subsequent_indent="    ")
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            continue
        if n.op == "output":
            lines.append(_clip(f"return {_fmt(n.args[0])}", width))
            continue
        if n.op == "get_attr":
            lines.append(_clip(f"{n.name} = get_attr {n.target}", width))
            continue
        shape, tower, role = n.meta.get(SHAPE), n.meta.get(TOWER), n.meta.get(ROLE)
        note = " ".join(x for x in ("x".join(map(str, shape)) if shape else "",
                                    "" if tower is None else f"t{tower}", str(role or "")) if x)
        args = ", ".join([_fmt(a) for a in n.args] + [f"{k}={_fmt(v)}" for k, v in n.kwargs.items()])
        line = f"{n.name} = {target_name(n, gm)}({args})"
        if note:
            line = _clip(line, width - len(note) - 5) + f"   # {note}"
        lines.append(_clip(line, width))
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_modules(gm: fx.GraphModule) -> str:
    """The modules dmt_compile added (Tower Modules, decoders, runtime exchanges), sorted by path."""
    lines = []
    for root in ("dmt", "dist"):
        if not hasattr(gm, root):
            continue
        for name, mod in sorted(gm.get_submodule(root).named_children()):
            body = repr(mod).replace("\n", "\n    ")
            lines.append(f"  {root}.{name}: {body}")
    return "\n".join(lines)


def to_json(gm: fx.GraphModule, plan: Any = None) -> str:
    nodes = []
    for n in gm.graph.nodes:
        nodes.append({
            "name": n.name, "op": n.op, "target": target_name(n, gm), "args": _args(n),
            "inputs": [a.name for a in n.all_input_nodes],
            "shape": list(n.meta[SHAPE]) if n.meta.get(SHAPE) is not None else None,
            "tower": n.meta.get(TOWER), "role": n.meta.get(ROLE),
        })
    doc: dict[str, Any] = {"nodes": nodes}
    if plan is not None:
        doc["plan"] = plan.to_dict()
    return json.dumps(doc, sort_keys=True, indent=2) + "\n"
