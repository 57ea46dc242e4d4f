"""The options of `transform`, derived from the option fields of `default_pipeline`'s passes.

`OPTIONS` maps each option's one name (the pass field, the `transform` keyword, the CLI flag with
dashes) to an `Option`: the pass that declares it, its type, default and `OptionSpec`
(`passes/option_field.py`). Adding a field with `option(...)` metadata to a pipeline pass adds the
option everywhere: `transform`, `TransformOptions`, the CLI, docs/API.md.

`TransformOptions` holds the options one call sets. An option left out or given as None is
*unset*: its pass's default applies, and `strategy="auto"` chooses the options it searches
(`Option.searched`: the Tower Module, its compression, the feed) unless they are set.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from dmt_compile.errors import InputError
from dmt_compile.passes.option_field import OptionSpec, has_text_form, option_fields
from dmt_compile.passes.pipeline import PIPELINE
from dmt_compile.passes.plan_feed import DEFAULT_COMPRESSION, MAX_COMPRESSION

__all__ = ["TransformOptions", "Option", "OPTIONS", "MAX_COMPRESSION", "DEFAULT_COMPRESSION", "options_doc"]


@dataclass(frozen=True)
class Option:
    """One option: its name, the pass class that declares it as a field, its type and declaration."""

    name: str
    pass_class: type
    field: dataclasses.Field
    spec: OptionSpec
    type: Any  # the field's annotation, resolved

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def searched(self) -> bool:
        return self.spec.searched

    @property
    def flag(self) -> str | None:
        """The CLI flag, or None for values a command line cannot spell (mappings, lists: Python only)."""
        return "--" + self.name.replace("_", "-") if has_text_form(self.type) else None

    @property
    def default_text(self) -> str:
        return self.spec.default_text or str(self.default)

    def help_text(self, default_text: str | None = None) -> str:
        """The help of the CLI flag and of the docs: the declaration's help and the default."""
        return f"{self.spec.help} (default: {default_text or self.default_text})"


def _collect(passes: tuple[type, ...]) -> dict[str, Option]:
    options: dict[str, Option] = {}
    for cls in passes:
        for f, spec, kind in option_fields(cls):
            if f.name in options:
                raise TypeError(f"option {f.name!r} is declared by {options[f.name].pass_class.__name__} "
                                f"and {cls.__name__}: one name per concept")
            options[f.name] = Option(f.name, cls, f, spec, kind)
    return options


OPTIONS: Mapping[str, Option] = MappingProxyType(_collect(PIPELINE))


def options_doc(indent: str = "") -> str:
    """One line per option (name, pass, help, default), for docstrings and docs/API.md."""
    return "\n".join(f"{indent}{o.name} ({o.pass_class.name}{', searched by strategy=auto' if o.searched else ''}):"
                     f" {o.help_text()}." for o in OPTIONS.values())


class TransformOptions:
    """The pass options of one `transform` call (those set: given and not None), frozen.

    `TransformOptions(num_towers=2, tower_module="linear")`; `o.num_towers` reads an option (its
    pass's default when unset), `o.is_set(name)` says whether the caller set it. `validated()` runs
    every pipeline pass's `check_fields` (typed errors, no model needed); `default_pipeline(o)`
    builds the passes. The options, from `OPTIONS`:
    """

    __slots__ = ("_given",)

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise InputError(f"unknown option(s): {', '.join(unknown)}", "options: " + ", ".join(OPTIONS))
        given = {k: v for k, v in options.items() if v is not None}
        object.__setattr__(self, "_given", MappingProxyType(given))

    def __getattr__(self, name: str) -> Any:
        if name in OPTIONS:
            return self._given.get(name, OPTIONS[name].default)
        raise AttributeError(f"TransformOptions has no option {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"TransformOptions is frozen: use replace({name}=...)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransformOptions) and dict(self._given) == dict(other._given)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._given.items())))

    def __repr__(self) -> str:
        return "TransformOptions(" + ", ".join(f"{k}={v!r}" for k, v in self._given.items()) + ")"

    def __iter__(self) -> Iterator[str]:
        return iter(self._given)

    def __reduce__(self):  # copy and pickle: rebuilt from the options set
        return _from_given, (dict(self._given),)

    @property
    def given(self) -> Mapping[str, Any]:
        """The options the caller set, by name."""
        return self._given

    def is_set(self, name: str) -> bool:
        """True when the caller set option `name` (not left out, not None)."""
        if name not in OPTIONS:
            raise InputError(f"unknown option {name!r}", "options: " + ", ".join(OPTIONS))
        return name in self._given

    def replace(self, **changes: Any) -> "TransformOptions":
        """A copy with `changes` (None unsets an option)."""
        return TransformOptions(**{**self._given, **changes})

    def for_pass(self, cls: type) -> dict[str, Any]:
        """The keywords of pass class `cls`: the options it declares that are set."""
        return {f.name: self._given[f.name] for f, _, _ in option_fields(cls) if f.name in self._given}

    def validated(self, search: bool = False) -> "TransformOptions":
        """Itself, once every pipeline pass has checked its fields; a typed error names a bad option.

        `search=True` (strategy="auto"): an unset searched option is the search's to choose, not its
        pass's default, so a compression set without a Tower Module is checked as a compressing one's.
        """
        checked = self
        if search and self.is_set("compression") and not self.is_set("tower_module"):
            checked = self.replace(tower_module=next(m for m in OPTIONS["tower_module"].spec.choices if m != "identity"))
        for cls in PIPELINE:
            cls(**checked.for_pass(cls)).check_fields()
        return self


def _from_given(given: dict[str, Any]) -> TransformOptions:
    return TransformOptions(**given)


TransformOptions.__doc__ = f"{TransformOptions.__doc__}\n{options_doc('    - ')}\n"
