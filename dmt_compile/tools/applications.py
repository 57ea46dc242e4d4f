"""Load an application of the `benchmarks` package (beside `dmt_compile` in a checkout) for a CLI command.

The library never imports the applications: `bench` and `train` load them by name when they run,
from the interpreter's path or from the checkout this `dmt_compile` was imported from, and say
how to get them where neither has them.
"""
from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from dmt_compile.errors import InputError

__all__ = ["load_application"]

PACKAGE = "benchmarks"


def _checkout_root() -> str | None:
    """The folder holding both `dmt_compile/` and `benchmarks/`, where this is a checkout."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.isfile(os.path.join(root, PACKAGE, "__init__.py")) else None


def load_application(module: str, command: str) -> ModuleType:
    """`benchmarks.<module>`; `InputError` naming the fix when this installation has no `benchmarks`."""
    name = f"{PACKAGE}.{module}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if not exc.name or not (name == exc.name or name.startswith(exc.name + ".")):
            raise  # a module the application itself imports is missing: not ours to hide
    root = _checkout_root()
    if root is not None and root not in sys.path:
        sys.path.append(root)
        return importlib.import_module(name)
    raise InputError(f"`{command}` needs the `{PACKAGE}` package, which is not installed with dmt_compile",
                     f"run it from a checkout of the repository: cd <checkout> && python -m dmt_compile {command} ...")
