"""Train the flat model and DMT variants side by side and print AUC / log-loss tables.

    python examples/train.py                      # synthetic planted groups (no data file needed)
    python examples/train.py --data adult         # UCI Adult (adult.csv.gz, see benchmarks/quality/adult.py)
    python examples/train.py --seeds 0 --tower-modules dot --epochs 4   # a quick look

Same options as `dmt-compile train` (see docs/QUALITY.md).
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dmt_compile.errors import DmtError  # noqa: E402
from dmt_compile.tools.cmd_train import add_train_arguments, run_train  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return run_train(args, sys.stdout)
    except DmtError as exc:
        print(f"train.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
