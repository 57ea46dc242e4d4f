"""The compiler passes, one per module, `default_pipeline` (`pipeline.py`), the options derived from
their option fields (`option_field.py` declares one, `options.py` collects `OPTIONS` and `TransformOptions`),
and a registry by kebab-case name.

`PASSES` maps a pass name to a loader of its class (imported on first use);
`parse_pipeline("detect,plan-towers{partitioner=learned,num-towers=2}")` builds pass objects
from a pipeline spec (options are the pass's dataclass fields, dashes for underscores).
See README.md in this folder for what each pass reads and writes.
"""
from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Any, Callable

__all__ = ["PASSES", "get_pass", "parse_pipeline", "format_pipeline"]


def _loader(module: str, cls: str) -> Callable[[], type]:
    return lambda: getattr(importlib.import_module(f"dmt_compile.passes.{module}"), cls)


PASSES: dict[str, Callable[[], type]] = {
    "split-collections": _loader("split_collections", "SplitCollections"),
    "split-tables": _loader("split_tables", "SplitTables"),
    "batch-major-lookups": _loader("flat_sequences", "BatchMajorLookups"),
    "detect": _loader("detect", "Detect"),
    "plan-towers": _loader("plan_towers", "PlanTowers"),
    "plan-feed": _loader("plan_feed", "PlanFeed"),
    "sptt-rewrite": _loader("sptt_rewrite", "SpttRewrite"),
    "insert-tower-modules": _loader("insert_tower_modules", "InsertTowerModules"),
}


def get_pass(name: str) -> type:
    from dmt_compile.errors import InputError

    if name not in PASSES:
        raise InputError(f"unknown pass {name!r}", "passes: " + ", ".join(PASSES))
    return PASSES[name]()


def _convert(text: str, field: dataclasses.Field, kind: Any, where: str) -> Any:
    from dmt_compile.errors import InputError
    from dmt_compile.passes.option_field import has_text_form, parse_text

    if not has_text_form(kind):
        raise InputError(f"{where} cannot be set from a pipeline spec", "pass it through transform() instead")
    try:
        return parse_text(text, kind)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not a valid {field.type}", "fix the pipeline spec") from None


def parse_pipeline(spec: str) -> list:
    """Pass objects from `name{opt=value,...},name,...` (options: the pass's option fields)."""
    from dmt_compile.errors import InputError
    from dmt_compile.passes.option_field import option_fields

    out = []
    for m in re.finditer(r"\s*([a-z][a-z0-9-]*)\s*(?:\{([^}]*)\})?\s*(?:,|$)", spec):
        if not m.group(1):
            continue
        cls = get_pass(m.group(1))
        fields = {f.name: (f, kind) for f, _, kind in option_fields(cls)}
        options = {}
        for item in filter(None, (x.strip() for x in (m.group(2) or "").split(","))):
            key, sep, value = item.partition("=")
            name = key.strip().replace("-", "_")
            if not sep or name not in fields:
                raise InputError(f"pass {m.group(1)!r} has no option {key.strip()!r}",
                                 "options: " + ", ".join(f.replace("_", "-") for f in fields) if fields else "none")
            options[name] = _convert(value.strip(), *fields[name], f"{m.group(1)}{{{key.strip()}}}")
        out.append(cls(**options))
    if not out:
        raise InputError(f"empty pipeline spec {spec!r}", "write e.g. detect,plan-towers{num-towers=2}")
    return out


def format_pipeline(passes: list) -> str:
    """The spec `parse_pipeline` reads back: non-default options only."""
    parts = []
    for p in passes:
        opts = [f"{f.name.replace('_', '-')}={getattr(p, f.name)}" for f in dataclasses.fields(p)
                if getattr(p, f.name) != f.default]
        parts.append(p.name + ("{" + ",".join(opts) + "}" if opts else ""))
    return ",".join(parts)
