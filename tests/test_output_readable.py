"""One readable output: every feature listed (wrapped, never cut), each note once, the same column names in
`str(plan)` and the summary, `dmt.dump()` is the summary, width respected, DOT feed labels from the plan."""
from __future__ import annotations

import os

import pytest

from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.ir.plan_text import PLAN_COLUMNS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dmt():
    import dmt_compile

    model, inputs = load_model_spec(os.path.join(ROOT, "examples", "dlrm.py") + ":factory")
    return dmt_compile.transform(model, "h100:64", inputs, tower_module="dot", compression=4)


def test_plan_lists_every_feature_and_says_each_note_once(dmt):
    text = str(dmt.plan)
    for feature in (f for d in dmt.plan.details for f in d.features):
        assert f" {feature}," in f" {text.replace(chr(10), ',')}," or f"{feature}\n" in text or f"{feature} " in text
    assert "..." not in text
    notes = [line for line in text.splitlines() if line.startswith("note:")]
    assert len(notes) == len(set(notes)) and sum("compresses by 3, not 4" in n for n in notes) == 1


@pytest.mark.parametrize("width", [80, 100, 160])
def test_summary_and_plan_keep_to_the_width_and_share_column_names(dmt, width):
    summary, plan = dmt.dump(width=width), dmt.plan.format(width)
    table_rows = {line for line in summary.splitlines() if line.lstrip().startswith(("tower ", "-----"))}
    for line in summary.splitlines() + plan.splitlines():
        assert len(line) <= max(width, 112) or line in table_rows, line  # the plan table has a minimum width
    header = next(line for line in plan.splitlines() if line.lstrip().startswith("tower"))
    for name in PLAN_COLUMNS:
        assert name in header and name in summary


def test_dump_defaults_to_the_summary(dmt):
    assert dmt.dump() == dmt.dump("summary") and "modules added:" not in dmt.dump()
    assert "modules added:" in dmt.dump("full")


def test_dot_feed_label_is_the_plans_feed(dmt):
    dot = dmt.dump("dot")
    feeds = {d.feed for d in dmt.plan.details}
    assert feeds == {"hierarchical"} and "hierarchical feed" in dot and "direct feed" not in dot


def test_cost_refuses_a_compression_transform_refuses(capsys):
    import io

    from dmt_compile.tools.cli import main

    assert main(["cost", "--topology", "h100:16", "--compression", "1000"], stdout=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "CostModelError: every compression ratio must be a number in [1, 16] (what transform accepts), got 1000" in err


def test_too_many_towers_names_the_cli_option_too(capsys):
    import io

    from dmt_compile.tools.cli import main

    code = main(["plan", os.path.join(ROOT, "examples", "dlrm.py") + ":factory", "--topology", "2x2",
                 "--num-towers", "40"], stdout=io.StringIO())
    assert code == 2 and "--num-towers 26" in capsys.readouterr().err


def test_affinity_matrix_and_topology_pictures(tmp_path):
    """`plan --affinity-png` draws the matrix ordered by tower; `topo --png` draws hosts and GPUs."""
    import io

    pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[plot]')")
    from dmt_compile.tools.cli import main

    matrix, topo = tmp_path / "aff.png", tmp_path / "topo.png"
    out = io.StringIO()
    assert main(["plan", os.path.join(ROOT, "examples", "dlrm.py") + ":factory", "--topology", "2x4", "--num-towers", "4",
                 "--partitioner", "learned", "--calibration", "2", "--affinity-png", str(matrix)], stdout=out) == 0
    assert main(["topo", "h100:64", "--png", str(topo)], stdout=out) == 0
    for path in (matrix, topo):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert f"affinity matrix: {matrix}" in out.getvalue() and f"wrote {topo}" in out.getvalue()
