"""Coverage matrix of a fuzzer report (`DMT_FUZZ_REPORT=path pytest tests/test_model_fuzzer.py`): option x outcome."""
from __future__ import annotations

import collections
import json
import sys

import fuzz_models as fm


def matrix(path: str) -> str:
    rows = [json.loads(line) for line in open(path)]
    counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        kind = row["outcome"].split(":")[0]
        for axis in fm.AXES:
            counts[(axis, row["recipe"][axis])][kind] += 1
    lines = [f"{len(rows)} models", "", "| axis | option | pass | typed error | fail |", "|---|---|---|---|---|"]
    for axis, options in fm.AXES.items():
        for option in options:
            c = counts[(axis, option)]
            lines.append(f"| {axis} | {option} | {c['pass']} | {c['typed']} | {c['fail']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(matrix(sys.argv[1]))
