"""Output a person can read: the dump's summary, the full table, the DOT picture, plan notes, cost --plot."""
from __future__ import annotations

import io
import os
import re
import shutil

import pytest

from conftest import ROOT
from dmt_compile.errors import CostModelError
from dmt_compile.printing import plain_notes
from dmt_compile.tools.cli import main

DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def run(*argv: str) -> str:
    out = io.StringIO()
    assert main(list(argv), stdout=out) == 0
    return out.getvalue()


def test_default_dump_is_a_short_summary_within_120_columns():
    text = run("dump", DLRM, "--topology", "h100:64", "--tower-module", "linear", "--compression", "4")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert len(lines) < 45
    assert lines[0].startswith("TowerPlan: 8 towers on topology 8x8 (dgx-h100), ")
    head = "\n".join(lines[:14])
    assert re.search(r"^\s+0\s+0\s+C1, C5, C23\s+3\s+48 -> 12\s+decoder\s+23,680\s+24 B\s+48 B$", head, re.M)
    assert "captured   plain fx tracing" in text and "rewritten  each tower: ids_exchange -> lookups" in text
    assert "predicted embedding stage per rank per step of this plan's towers on dgx-h100" in text
    assert "sptt_tm(c=4)" in text and "--format full" in text
    assert "%tower0_ids" not in text and "operator.getitem" not in text  # no node table by default


def test_summary_lists_every_feature_of_a_wide_tower():
    text = run("dump", DLRM, "--topology", "1x4")  # one tower with all 26 features
    body = text.split("in -> out:")[0]
    for i in range(1, 27):
        assert re.search(rf"\bC{i}\b", body), f"C{i} cut from the plan"
    assert "..." not in body


def test_full_dump_folds_getitem_plumbing():
    text = run("dump", DLRM, "--topology", "2x4", "--full")
    assert "dmt.tower0_tm [IdentityTowerModule]" in text and "modules added:" in text
    row = next(line for line in text.splitlines() if re.match(r"^\d+\s+tower0_ids\s", line))
    assert "13 items: tower0_ids_0 .. tower0_ids_12" in row
    assert not re.search(r"^\d+\s+tower0_ids_3\s", text, re.M)  # the getitems are folded into that row
    assert run("dump", DLRM, "--topology", "2x4", "--format", "full") == text


def test_dot_picture_of_26_features_is_compact_with_legend_and_plan_label():
    text = run("dump", DLRM, "--topology", "h100:64", "--tower-module", "linear", "--format", "dot")
    boxes = re.findall(r'^\s+"(g_[^"]+)" \[label=', text, re.M)
    assert len(boxes) < 60  # 8 towers x 6 roles + inputs, dense groups, output: not one box per fx node
    clusters = re.findall(r"subgraph cluster_tower(\d+)", text)
    assert clusters == [str(t) for t in range(8)]  # towers in order
    assert "subgraph cluster_legend" in text and "ids exchange (to the tower's host)" in text
    assert 'label="8 towers on dgx-h100 (8 hosts x 8), linear Tower Modules, compression 4' in text
    assert "tower 0 on host 0" in text and "C1, C5, C23" in text and "linear: 48 -> 12" in text
    assert "getitem" not in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot program is not on PATH (a system tool, no pip extra provides it)")
def test_png_is_rendered_when_graphviz_is_present(tmp_path):
    out = tmp_path / "plan.png"
    text = run("dump", DLRM, "--topology", "2x4", "--png", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in text


def test_png_without_graphviz_names_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = io.StringIO()
    assert main(["dump", DLRM, "--topology", "2x2", "--png", str(tmp_path / "x.png")], stdout=out) == 2
    assert "InputError: --png needs graphviz's `dot` program" in capsys.readouterr().err
    assert out.getvalue() == ""  # refused before the transform printed anything


def test_plan_notes_in_plain_words_and_merged():
    notes = plain_notes([
        "kept together in tower 1: Xi[:,0] (several lookups read the ids of Xi[:,0])",
        "kept together in tower 1: Xi[:,1] (several lookups read the ids of Xi[:,1])",
        "kept together in tower 0: Xi[:,3] (several lookups read the ids of Xi[:,3])",
        "hosts [2, 3] hold no tower (fewer towers than hosts)",
        "hosts [2, 3] hold no tower (fewer towers than hosts)",
    ])
    assert notes[0] == ("kept together (several lookups read the same ids): tower 0: Xi[:,3]; "
                        "tower 1: Xi[:,0], Xi[:,1]")
    assert notes.count("hosts [2, 3] hold no tower (fewer towers than hosts)") == 1
    assert len(notes) == 2


def test_the_same_remark_about_several_towers_is_said_once():
    notes = plain_notes(["tower 0 compresses by 3, not 4: its number of embeddings is 3",
                         "hierarchical feed: ...",
                         "tower 2 compresses by 3, not 4: its number of embeddings is 3",
                         "tower 1 compresses by 2, not 4: its number of embeddings is 2"])
    assert notes == ["towers 0, 2: each compresses by 3, not 4: its number of embeddings is 3",
                     "hierarchical feed: ...",
                     "tower 1 compresses by 2, not 4: its number of embeddings is 2"]


def test_summary_lists_the_layers_rebuilt_for_the_compressed_width():
    text = run("dump", os.path.join(ROOT, "examples", "dlrm.py") + ":factory", "--topology", "h100:64",
               "--tower-module", "dot", "--compression", "4")
    assert "rebuilt for the compressed width: top_mlp.0" in text
    assert "top_mlp.0 (linear 64x367 -> 64x52" in text and "triu_indices(9, 9, offset=1)" in text
    assert text.count("compresses by 3, not 4") == 1  # six towers, one note
    assert max(map(len, text.splitlines())) <= 120


def test_plan_and_summary_say_the_plan_in_the_same_words():
    """`plan` and `dump` lead with the same header and follow the table with the same lines."""
    args = (DLRM, "--topology", "h100:64", "--tower-module", "dot", "--compression", "4")
    plan_text, summary = run("plan", *args), run("dump", *args)
    flat = lambda text: " ".join(text.split())  # noqa: E731  (lines wrap at the terminal's width)
    header = re.match(r"TowerPlan: .*? balance max/mean [\d.]+", flat(plan_text)).group(0)
    assert ", partitioner " in header and ", dot Tower Module c=4, " in header
    where = header.replace("on topology 8x8,", "on topology 8x8 (dgx-h100),")
    assert where != header and flat(summary).startswith(where)
    after_table = [line for line in plan_text.splitlines() if line.startswith(("note: ", "partitioner: ", "rebuilt ", "dense "))]
    assert any(line.startswith("rebuilt for the compressed width: ") for line in after_table)
    assert all(line in summary.splitlines() for line in after_table)
    for words in ("notes:", "rebuilt: ", "(partitioner "):  # the old second vocabulary is gone from both
        assert words not in plan_text and words not in summary


def test_real_model_notes_never_show_torch_errors():
    # the DLRM's top MLP takes the embeddings at their original count: direct feed fails inside torch
    text = run("dump", os.path.join(ROOT, "examples", "dlrm.py") + ":factory", "--topology", "2x4",
               "--tower-module", "linear", "--feed", "auto", "--format", "full")
    for raw in ("shapes cannot be multiplied", "mat1", "While executing", "size of tensor"):
        assert raw not in text


def test_cost_plot_fails_fast_before_printing(tmp_path, monkeypatch, capsys):
    import sys

    from dmt_compile.tools.cmd_cost import _require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(CostModelError, match="pip install"):
        _require_matplotlib()
    out = io.StringIO()
    assert main(["cost", "--topology", "h100:16", "--sweep", "16,32", "--plot", str(tmp_path / "s.png")],
                stdout=out) == 2
    assert out.getvalue() == ""  # nothing printed before the refusal
    assert "--plot needs matplotlib" in capsys.readouterr().err


def test_cost_plot_has_numbers_on_the_axis_and_the_assumptions_in_the_title(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    saved = {}
    real = plt.Figure.savefig

    def spy(fig, path, **kw):
        ax = fig.axes[0]
        saved.update(title=ax.get_title(), ticks=[t.get_text() for t in ax.get_xticklabels()], dpi=kw.get("dpi"))
        return real(fig, path, **kw)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    out = tmp_path / "sweep.png"
    text = run("cost", "--topology", "h100:16", "--sweep", "16,64,512", "--bytes-per-element", "2", "--plot", str(out))
    assert out.read_bytes()[:4] == b"\x89PNG" and f"wrote {out}" in text
    assert saved["ticks"] == ["16", "64", "512"] and saved["dpi"] >= 150
    assert "cost-model prediction" in saved["title"]
    assert "26 features, dim 128, batch 1024 per GPU, bf16/fp16" in saved["title"]
