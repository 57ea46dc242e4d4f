"""The package's layers point one way, and no module imports another in a cycle.

    errors < ir < {topo, capture, tower_modules} < partition < passes < {printing, runtime, strategy}
           < model < lowering < training < api (api/: transform and its auto search; __init__.py)
           < interop < tools (and __main__.py)

Every `import` / `from ... import` in a module counts, also those inside functions (lazy
imports), so a layer cannot reach up even lazily. Components of one tier do not import each
other. Imports under `if TYPE_CHECKING:` count too: a type named from above is an arrow up all
the same. The `transform` walk (dmt_compile.api and all it imports) never enters `lowering/` or `training/`.
Also checked: no module over 400 lines, no function over 60 lines unless its docstring says why it
is long ("Long:").
"""
from __future__ import annotations

import ast
import os
from collections import defaultdict

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dmt_compile")

TIERS = {
    "errors": 0, "ir": 1, "topo": 2, "capture": 2, "tower_modules": 2, "partition": 3, "passes": 4,
    "printing": 5, "runtime": 5, "strategy": 5, "model": 6, "lowering": 7, "training": 8, "api": 9, "interop": 10, "tools": 11,
}
COMPONENT_OF_FILE = {"__init__.py": "api",
                     "__main__.py": "tools",
                     "errors.py": "errors", "printing.py": "printing"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, str]:
    """dotted module name -> file path, for every module of the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


def _component(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return "api"
    if len(parts) == 2 and parts[1] + ".py" in COMPONENT_OF_FILE:
        return COMPONENT_OF_FILE[parts[1] + ".py"]
    return parts[1]


def _imports(module: str, path: str, known: set[str]) -> set[str]:
    tree = ast.parse(open(path).read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import submodule` imports the submodule; `from mod import name` imports mod
            names = [n for n in subs if n in known] + ([base] if any(n not in known for n in subs) else [])
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


MODULES = _modules()
GRAPH = {m: _imports(m, p, set(MODULES)) for m, p in MODULES.items()}


def test_every_component_has_a_tier():
    unknown = sorted({_component(m) for m in MODULES} - set(TIERS))
    assert not unknown, f"components without a tier: {unknown}; add them to TIERS in tests/test_layers.py"


def test_imports_point_down_the_layers():
    bad = []
    for m, deps in sorted(GRAPH.items()):
        cm = _component(m)
        for d in sorted(deps):
            cd = _component(d)
            if cd == cm or d == "dmt_compile" and cm == "api":
                continue
            if TIERS[cd] >= TIERS[cm]:
                bad.append(f"{m} ({cm}, tier {TIERS[cm]}) imports {d} ({cd}, tier {TIERS[cd]})")
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_no_import_cycles():
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_transform_never_enters_lowering_or_training():
    seen, todo = set(), ["dmt_compile.api"]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(d for d in GRAPH[m] if d != "dmt_compile")  # the package's face re-exports; api is below it
    entered = sorted(m for m in seen if _component(m) in ("lowering", "training"))
    assert not entered, f"the transform walk imports {entered}"


def test_tools_are_not_imported_by_the_library():
    users = defaultdict(list)
    for m, deps in GRAPH.items():
        for d in deps:
            if _component(d) == "tools" and _component(m) != "tools":
                users[d].append(m)
    assert not users, f"library modules import tools/: {dict(users)}"


def test_the_library_never_imports_the_applications():
    users = []
    for m, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(open(path).read(), path)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            users += [f"{m} imports {n}" for n in names if n == "benchmarks" or n.startswith("benchmarks.")]
    assert not users, "the applications (benchmarks/) are loaded by name, never imported: " + "; ".join(users)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_and_function_sizes(module):
    path = MODULES[module]
    text = open(path).read()
    lines = text.count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path} has {lines} lines (max {MAX_MODULE_LINES}); split it"
    long = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > MAX_FUNCTION_LINES and "Long:" not in (ast.get_docstring(node) or ""):
                long.append(f"{node.name} ({n} lines, line {node.lineno})")
    assert not long, f"{path}: functions over {MAX_FUNCTION_LINES} lines without a 'Long:' reason: {long}"
