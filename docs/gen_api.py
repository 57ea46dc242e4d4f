"""Write docs/API.md, the API reference, from the public names' docstrings and signatures.

    python docs/gen_api.py           # rewrite docs/API.md
    python docs/gen_api.py --check   # exit 1 when docs/API.md is out of date (tests/test_api_docs.py runs this)

Only the standard library (inspect) is used. The reference covers the names a user imports:
`dmt_compile`, the transform options, the training log, `dmt_compile.runtime`, `dmt_compile.topo`,
`dmt_compile.errors` and (by name: they need torchrec to import) `dmt_compile.interop`.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "API.md")
SECTIONS = [  # (module, names or None for its __all__, heading)
    ("dmt_compile", None, "Transform and train"),
    ("dmt_compile.passes.options", ["TransformOptions"], "Transform options"),
    ("dmt_compile.training.log", ["TrainingLog"], "Training progress"),
    ("dmt_compile.runtime", None, "Distributed runtime"),
    ("dmt_compile.topo", None, "Topologies and the cost model"),
    ("dmt_compile.errors", None, "Errors"),
]


def _clean(text: str) -> str:
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _signature(obj) -> str:
    """The signature with annotations unquoted (`from __future__ import annotations` keeps them as strings)."""
    try:
        text = _clean(str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return "(...)"
    text = re.sub(r"ForwardRef\('([^']*)'\)", r"\1", text)
    text = re.sub(r": '([^']*)'", r": \1", text)
    return re.sub(r"-> \"?'([^']*)'\"?$", r"-> \1", text)


def _doc(obj, first_paragraph: bool = False) -> str:
    doc = inspect.getdoc(obj) or ""
    if first_paragraph:
        doc = " ".join(doc.split("\n\n")[0].split())
    return _clean(doc)


def _members(cls) -> list[tuple[str, object]]:
    """Public methods and properties a class defines itself, in source order."""
    out = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            out.append((name, value))
    return out


def _entry(module: str, name: str, obj) -> list[str]:
    if inspect.isclass(obj):
        lines = [f"### `{name}{_signature(obj) if not issubclass(obj, BaseException) else ''}`", "",
                 f"*class in `{obj.__module__}`*", "", _doc(obj), ""]
        if "(module docstring" in _doc(obj):  # the class points at its module's docstring: show it
            lines += [_doc(sys.modules[obj.__module__]), ""]
        for member, value in _members(obj):
            if isinstance(value, property):
                lines += [f"- **`{member}`** (property): {_doc(value.fget, True) or '-'}"]
            else:
                lines += [f"- **`{member}{_signature(value)}`**: {_doc(value, True) or '-'}"]
        return lines + [""]
    if callable(obj):
        return [f"### `{name}{_signature(obj)}`", "", f"*function in `{obj.__module__}`*", "", _doc(obj), ""]
    return [f"### `{name}`", "", f"*{type(obj).__name__} in `{module}`*", ""]


def render() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/gen_api.py` (CI checks it is up to date:",
             "`tests/test_api_docs.py`). Narrative docs: `README.md`, `docs/DESIGN.md`, `docs/BYOM.md`,",
             "`docs/GPU.md`.", ""]
    for module_name, names, heading in SECTIONS:
        module = importlib.import_module(module_name)
        lines += [f"## {heading} (`{module_name}`)", ""]
        if names is None and module.__doc__:
            lines += [_doc(module, True), ""]
        for name in names or list(module.__all__):
            lines += _entry(module_name, name, getattr(module, name))
    interop = importlib.import_module("dmt_compile.interop")
    lines += ["## TorchRec interop (`dmt_compile.interop`)", "", _doc(interop), "",
              "Functions (they need torchrec; see the README's TorchRec recipe): "
              + ", ".join(f"`{n}`" for n in interop.__all__) + ".", ""]
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="exit 1 when docs/API.md differs from the docstrings")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = open(OUT).read() if os.path.exists(OUT) else ""
        if current != text:
            print("docs/API.md is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    with open(OUT, "w") as fh:
        fh.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
