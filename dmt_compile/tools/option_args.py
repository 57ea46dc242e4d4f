"""CLI flags derived from the passes' option fields (`dmt_compile.passes.options.OPTIONS`).

Each option with a text form gets `--name-with-dashes` (plus its former flags, which warn), its
type, and the help text its pass declares; every flag defaults to unset (None), so the pass's
default applies exactly as it does for `transform`. A command may give an option another default
(with the words saying so); the option's help text stays the pass's.
"""
from __future__ import annotations

import argparse
import warnings
from typing import Any, Iterable, Mapping

from dmt_compile.errors import DmtError
from dmt_compile.passes.option_field import parse_text
from dmt_compile.passes.options import OPTIONS, Option, TransformOptions

__all__ = ["add_option_args", "option_values", "options_from_args", "cli_options"]


def cli_options() -> list[Option]:
    """The options a command line can set (mappings and lists are Python only)."""
    return [o for o in OPTIONS.values() if o.flag]


class _OptionAction(argparse.Action):
    """Store the value; a former flag of the option stores it too, with a DeprecationWarning."""

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string is not None and option_string != self.option_strings[0]:
            warnings.warn(f"{option_string} is deprecated: use {self.option_strings[0]}", DeprecationWarning,
                          stacklevel=2)
        setattr(namespace, self.dest, values)


def _converter(option: Option):
    def convert(text: str) -> Any:
        try:
            return parse_text(text, option.type)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = option.name  # argparse names the option in its message
    return convert


def add_option_args(parser: argparse.ArgumentParser, names: Iterable[str] | None = None,
                    defaults: Mapping[str, tuple[Any, str]] | None = None) -> None:
    """Add the flags of options `names` (default: every option with a text form) to `parser`.

    `defaults`: {name: (value, words)} where this command's default differs from the pass's.
    """
    defaults = dict(defaults or {})
    for o in cli_options() if names is None else [OPTIONS[n] for n in names]:
        value, words = defaults.get(o.name, (None, None))
        metavar = "{" + ",".join(o.spec.choice_list()) + "}" if o.spec.choices is not None else o.name.upper()
        parser.add_argument(o.flag, *o.spec.aliases, dest=o.name, action=_OptionAction, type=_converter(o),
                            default=value, metavar=metavar, help=o.help_text(words))


def option_values(args: argparse.Namespace) -> dict[str, Any]:
    """{option name: value} for every option flag `args` has (None: unset)."""
    return {name: getattr(args, name) for name in OPTIONS if hasattr(args, name)}


def options_from_args(args: argparse.Namespace) -> TransformOptions:
    """The command line's options, checked by their passes; a bad value's typed error names the flag."""
    options = TransformOptions(**option_values(args))
    try:
        return options.validated(search=getattr(args, "strategy", "manual") == "auto")
    except DmtError as exc:
        name = getattr(exc, "option", None)
        if name is None or name not in OPTIONS or not OPTIONS[name].flag:
            raise
        problem = exc.problem.replace(name, f"{name} ({OPTIONS[name].flag})", 1)
        raise type(exc)(problem, exc.fix) from None
