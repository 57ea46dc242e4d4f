"""`dmt-compile` / `python -m dmt_compile`: a thin argparse shell over the library.

Each command lives in its own `tools.cmd_*` module with a `register(subparsers)` function; the
list below is explicit, so a broken command module fails loudly instead of disappearing.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import IO, Sequence

from dmt_compile.errors import DmtError
from dmt_compile.tools import cmd_bench, cmd_checkpoint, cmd_cost, cmd_dump, cmd_plan, cmd_train, cmd_verify

__all__ = ["get_args_parser", "main", "COMMAND_MODULES"]

VERBOSE_HELP = "log more and show the warnings dmt_compile silences (-v info, -vv debug); before or after the command"
COMMAND_MODULES = (cmd_dump, cmd_plan, cmd_cost, cmd_verify, cmd_train, cmd_bench, cmd_checkpoint)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmt-compile",  # `python -m dmt_compile` is the same program
                                     description="Turn a flat recommendation model into a DMT model.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    for command in sub.choices.values():  # `-v` means the same after the subcommand as before it
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None) -> int:
    stdout = stdout or sys.stdout
    parser = get_args_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args, stdout) or 0)
    except DmtError as exc:
        print(f"dmt-compile: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
