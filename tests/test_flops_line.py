"""FLOPs per sample printed by `plan` / `dump`: flat's count equals the bench DLRM's arithmetic, and
dot, linear and wukong at c = 4 with hierarchical feed cost less than flat's interaction (cross does not:
it crosses the tower's full width, 5.4x flat; the opt-in field-wise cross is 0.54x but loses quality)."""
import io
import re

import pytest

from dmt_compile.tools.cli import main

BENCH = "benchmarks.emulated.model:factory"


def _plan(tm: str) -> str:
    out = io.StringIO()
    assert main(["plan", BENCH, "--topology", "2x2", "--tower-module", tm, "--compression", "4",
                 "--feed", "hierarchical"], stdout=out) == 0
    return out.getvalue()


def _numbers(text: str) -> tuple[float, float, float, float]:
    m = re.search(r"flat ([\d.,]+)k; DMT ([\d.,]+)k = Tower Modules ([\d.,]+)k \+ global interaction and dense "
                  r"layers ([\d.,]+)k", text)
    assert m, text
    return tuple(float(g.replace(",", "")) * 1e3 for g in m.groups())


@pytest.mark.parametrize("tm, bound", [("dot", 0.66), ("linear", 0.3), ("wukong", 0.63)])
def test_tower_modules_cut_forward_flops(tm, bound):
    flat, total, tms, rest = _numbers(_plan(tm))
    # bottom 13->128->64, dot over 27 vectors of 64 (full Gram), top 415->64->1: per sample, x2 for multiply-add
    assert abs(flat - (2 * (13 * 128 + 128 * 64) + 2 * 27 * 27 * 64 + 2 * (415 * 64 + 64))) < 100
    assert abs(total - (tms + rest)) < 200 and tms > 0
    assert total <= bound * flat, (tm, total / flat)
