"""What the cost model accepts, and the promise that it never reports a NaN or infinite time.

`cost --compression inf` used to price a Tower Module with 0 output bytes (a 3.74x "speedup"), and
absurd sizes printed rows of 1e22 µs. :func:`check_config` refuses, with one typed line each,
compression ratios that ``transform`` would refuse (not a finite number in [1, 16]), and sizes past
the limits below (far beyond any real model; they keep the model's arithmetic finite and fast).
:func:`check_rows` is the last line of defence: a result holding NaN or inf names the strategy and
the term instead of printing it.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from dmt_compile.errors import CostModelError

__all__ = ["MAX_COST_COMPRESSION", "MAX_COST_FEATURES", "MAX_COST_WIDTH", "MAX_COST_BATCH", "MAX_COST_POOLING",
           "check_config", "check_rows"]

#: Same as ``dmt_compile.passes.options.MAX_COMPRESSION`` (the paper's Tower Modules compress up to 16x);
#: a test holds them equal (this layer cannot import the options).
MAX_COST_COMPRESSION = 16.0
MAX_COST_FEATURES = 100_000
MAX_COST_WIDTH = 1 << 20  # embedding elements per sample of one feature
MAX_COST_BATCH = 1 << 24  # samples per rank
MAX_COST_POOLING = 1 << 16  # ids per sample of one feature


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _refuse(what: str, got: Any, limits: str, example: str) -> CostModelError:
    return CostModelError(f"{what} must be {limits}, got {got!r}", f"give {example}")


def check_config(widths: Sequence[float], batch: Any, pooling: Sequence[float] | None, compressions: Sequence[float],
                 bytes_per_element: Any) -> None:
    """Refuse non-finite, negative or absurd workload values (module docstring)."""
    bad_c = [c for c in compressions if not _finite(c) or not 1 <= c <= MAX_COST_COMPRESSION]
    if bad_c:
        raise _refuse("every compression ratio", bad_c[0], f"a number in [1, {MAX_COST_COMPRESSION:g}] (what transform "
                      "accepts)", "ratios like --compression 4 16")
    if not 1 <= len(widths) <= MAX_COST_FEATURES:
        raise _refuse("the number of features", len(widths), f"in [1, {MAX_COST_FEATURES:,}]", "e.g. --features 26")
    bad_w = [w for w in widths if not _finite(w) or not 0 < w <= MAX_COST_WIDTH]
    if bad_w:
        raise _refuse("every feature width", bad_w[0], f"a number in (0, {MAX_COST_WIDTH:,}]", "e.g. --dim 128")
    if not _finite(batch) or not 1 <= batch <= MAX_COST_BATCH or int(batch) != batch:
        raise _refuse("the batch per rank", batch, f"a whole number in [1, {MAX_COST_BATCH:,}]", "e.g. --batch 1024")
    bad_p = [p for p in (pooling or ()) if not _finite(p) or not 0 <= p <= MAX_COST_POOLING]
    if bad_p:
        raise _refuse("the pooling factor", bad_p[0], f"a number in [0, {MAX_COST_POOLING:,}]", "e.g. --pooling 1")
    if not _finite(bytes_per_element) or bytes_per_element not in (1, 2, 4, 8):
        raise _refuse("bytes per element", bytes_per_element, "1, 2, 4 or 8", "4 for fp32, 2 for bf16")


def check_rows(rows: Mapping[str, Mapping[str, float]], where: str = "") -> None:
    """Raise naming the strategy and term of the first NaN or infinite value of a comparison."""
    for name, row in rows.items():
        for term, value in row.items():
            if not _finite(value):
                raise CostModelError(
                    f"the cost model computed {value} for {term} of {name}{where}; refusing to report it",
                    "check the topology's bandwidths and latencies and the --param overrides (all must be finite "
                    "and positive)")
