"""One declaration per option: a pass's dataclass field with `option(...)` metadata.

    compression: float | None = field(default=None, metadata=option(
        "ratio c of a compressing Tower Module", minimum=1.0, maximum=16.0, default_text="4, or 1 for identity"))

The field's name is the option's one name (the `transform` keyword, the `TransformOptions`
attribute, the CLI flag with dashes, the `--passes` spec key), its annotation its type, its default
the default, the metadata its help text, choices and range. `Pass.check_fields` checks every
option field against this declaration (typed errors, no graph needed); `passes/options.py`
collects the fields of `default_pipeline`'s passes into `OPTIONS`, and `tools/option_args.py` turns
them into CLI flags.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import Any, Collection

__all__ = ["OptionSpec", "option", "option_fields", "value_problem", "fix_text", "parse_text", "has_text_form",
           "OPTION_KEY"]

OPTION_KEY = "dmt.option"
_TEXT_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class OptionSpec:
    """What a pass says about one of its option fields (beside the field's name, type and default)."""

    help: str  # one line: what the option does; the CLI help, the `transform` docstring and docs/API.md
    choices: Collection[str] | None = None  # allowed values (a registry dict is read when checked)
    minimum: float | None = None  # smallest allowed number
    maximum: float | None = None  # largest allowed number
    default_text: str | None = None  # the default in words, where the field's default (e.g. None) is not it
    aliases: tuple[str, ...] = ()  # former CLI flags, still accepted with a DeprecationWarning
    searched: bool = False  # strategy="auto" chooses it when the caller leaves it unset
    example: Any = None  # a good value, for the "fix" line of an error

    def choice_list(self) -> list[str]:
        return list(self.choices or ())


def option(help: str, **spec: Any) -> dict[str, OptionSpec]:
    """Field metadata declaring an option: `field(default=..., metadata=option("what it does", ...))`."""
    return {OPTION_KEY: OptionSpec(help, **spec)}


@functools.cache
def option_fields(cls: type) -> tuple[tuple[dataclasses.Field, OptionSpec, Any], ...]:
    """(field, spec, resolved type) of every option field of pass class `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    return tuple((f, f.metadata[OPTION_KEY], hints[f.name]) for f in dataclasses.fields(cls)
                 if OPTION_KEY in f.metadata)


def _classes(kind: Any) -> tuple[type, ...] | None:
    """The runtime classes a value of annotation `kind` may have; None: anything (`Any`)."""
    if kind is Any:
        return None
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        parts = [_classes(k) for k in typing.get_args(kind)]
        return None if any(p is None for p in parts) else tuple(c for p in parts for c in p)
    origin = typing.get_origin(kind) or kind
    return (float, int) if origin is float else (origin,) if isinstance(origin, type) else None


def _type_name(cls: type) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "True or False",
             collections.abc.Mapping: "a dict", collections.abc.Sequence: "a list", type(None): "None"}
    return names.get(cls, f"a {cls.__name__}")


def value_problem(name: str, value: Any, kind: Any, spec: OptionSpec) -> str | None:
    """Why `value` is not allowed for option `name` (declared type `kind`, `spec`), or None when it is."""
    allowed = _classes(kind)
    wrong_bool = isinstance(value, bool) and bool not in (allowed or (bool,))
    if allowed is not None and (wrong_bool or not isinstance(value, allowed)):
        wanted = " or ".join(dict.fromkeys(_type_name(c) for c in allowed if c is not int or float not in allowed))
        return f"{name} must be {wanted}, got {value!r}"
    if value is None:
        return None
    if spec.choices is not None and value not in spec.choices:
        return f"unknown {name} {value!r}"
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low:g}, {high:g}]" if low is not None and high is not None else \
            f">= {low:g}" if low is not None else f"<= {high:g}"
        return f"{name} must be {bounds}, got {value!r}"
    return None


def fix_text(name: str, spec: OptionSpec) -> str:
    """The "fix" line for a bad value of option `name`."""
    if spec.choices is not None:
        return "choose one of: " + ", ".join(spec.choice_list())
    return f"e.g. {name}={spec.example!r}" if spec.example is not None else f"see the help of {name}"


def has_text_form(kind: Any) -> bool:
    """True when a value of annotation `kind` can be written on a command line (bool, int, float, str, optional)."""
    allowed = _classes(kind)
    return allowed is not None and all(c in _TEXT_TYPES or c is type(None) for c in allowed)


def parse_text(text: str, kind: Any) -> Any:
    """A value of annotation `kind` from command-line text ("none" for None); ValueError when it is not one."""
    allowed = _classes(kind) or ()
    if text.lower() == "none" and type(None) in allowed:
        return None
    for cls in (bool, float, int, str):  # float first: a float option reads "4" as 4.0
        if cls not in allowed:
            continue
        if cls is bool:
            if text.lower() in ("true", "false"):
                return text.lower() == "true"
            continue
        try:
            return cls(text)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not {' or '.join(_type_name(c) for c in allowed)}")

