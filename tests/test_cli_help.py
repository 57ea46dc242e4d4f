"""Every option of every subcommand says what it does in `--help`, and `-v` means one thing everywhere."""
from __future__ import annotations

import argparse

import os

import pytest

from dmt_compile.tools.cli import get_args_parser


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    yield prefix or "dmt-compile", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, f"{prefix} {name}".strip())


COMMANDS = list(_subparsers(get_args_parser()))


def test_every_subcommand_is_walked():
    names = {name for name, _ in COMMANDS}
    assert {"dump", "plan", "cost", "topo", "verify", "train", "bench", "checkpoint"} <= names


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_has_help(name, parser):
    undocumented = [a.option_strings[0] if a.option_strings else a.dest for a in parser._actions
                    if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
                    and (not a.help or a.help == argparse.SUPPRESS or len(a.help.strip()) < 8)]
    assert not undocumented, f"`{name} --help` documents no text for {undocumented}"
    assert parser.description or name == "dmt-compile" or _help_of(name), f"`{name}` has no description"


def _help_of(name: str) -> str:
    for action in get_args_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name.split()[0]:
                    return choice.help or ""
    return ""


@pytest.mark.parametrize("name,parser", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_dash_v_means_verbose_logging_only(name, parser):
    """`-v` is the global logging switch; no subcommand gives it another meaning."""
    for action in parser._actions:
        if "-v" in action.option_strings:
            assert name == "dmt-compile" or action.dest == "verbose", f"`{name} -v` means {action.dest}"


def test_torch_fx_tracing_notice_is_silent_by_default_and_shown_with_v():
    """TorchRec's KeyedJaggedTensor calls torch's is_fx_tracing, which logs a notice once per process."""
    import subprocess
    import sys

    pytest.importorskip("torchrec", reason="torchrec is not installed (README, TorchRec recipe)")
    # run from tests/ as `zoo.…`: some wheels (pytorch-widedeep) install a top-level `tests` package
    cmd = [sys.executable, "-m", "dmt_compile", "dump", "zoo.m10_torchrec_dlrm:factory", "--topology", "2x2"]
    here = os.path.dirname(os.path.abspath(__file__))
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=here)
    loud = subprocess.run(cmd + ["-v"], capture_output=True, text=True, timeout=300, cwd=here)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "is_fx_tracing" not in quiet.stderr and quiet.stderr.strip() == ""
    assert "is_fx_tracing" in loud.stderr
