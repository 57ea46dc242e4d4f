"""Emulated multi-host benchmark (issue 7): same flags as `dmt-compile bench`; needs root.

    python benchmarks/bench_emulated.py --emulate 2x4 --inter-bw 1gbit --steps 10
"""
from __future__ import annotations

import argparse
import sys

from dmt_compile.bench.cli_commands import add_subcommands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_emulated")
    sub = parser.add_subparsers(dest="command")
    add_subcommands(sub)
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
