"""`dmt-compile cost --model` and `dmt-compile dump` print one number for one question: the predicted
speedup (and total) of the towers `transform` plans for a model, Tower Module and compression on a
topology (both read `partition.plan_cost`)."""
from __future__ import annotations

import io
import json
import os

import pytest

from conftest import ROOT
from dmt_compile.tools.cli import main

DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def _run(*argv: str) -> str:
    out = io.StringIO()
    assert main(list(argv), stdout=out) == 0
    return out.getvalue()


def _row(text: str, label: str) -> list[str]:
    """The cells of the table row that starts with `label` (tabulate's simple or github layout)."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else line.split()
        if cells and cells[0] == label:
            return cells
    raise AssertionError(f"no row {label!r} in:\n{text}")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(text: str) -> list[str]:
    """The lines of the first github-layout table in `text`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def _term(table: list[str], strategy: str, term: str) -> str:
    """One number of the cost table, whichever way it is laid out (strategies as rows or as columns)."""
    header = _cells(table[0])
    rows = [_cells(line) for line in table[2:]]
    if header[0] == "strategy":
        return next(r for r in rows if r[0] == strategy)[header.index(term)]
    return next(r for r in rows if r[0] == term)[header.index(strategy)]


@pytest.mark.parametrize("topology,tower_module,compression", [
    ("h100:64", "dot", "4"),      # hierarchical feed: towers narrower than width/c would say
    ("h100:16", "linear", "16"),  # decoder feed, towers narrower than c clamped
    ("h100:64", "identity", None),
])
def test_cost_model_prints_the_table_dump_prints(topology, tower_module, compression):
    """The same table, term by term: the dump merges nothing that `cost` prints one by one."""
    dump_args = ["dump", DLRM, "--topology", topology, "--tower-module", tower_module]
    if tower_module == "identity":
        label, cost_args = "sptt", ["--strategies", "flat,sptt"]
    else:
        label, cost_args = f"sptt_tm(c={compression})", ["--tower-module", tower_module, "--compression", compression,
                                                               "--strategies", "flat,sptt_tm"]
        dump_args += ["--compression", compression]
    dump = _run(*dump_args)
    cost = _run("cost", "--model", DLRM, "--topology", topology, *cost_args)
    table = _table(dump)
    assert table == _table(cost)
    doc = json.loads(_run("cost", "--model", DLRM, "--topology", topology, *cost_args, "--format", "json"))
    speedup = _term(table, label, "speedup")
    assert speedup.endswith("x") and f"{doc['strategies'][label]['speedup']:.2f}x" == speedup
    terms = [t for t in doc["strategies"][label] if t.endswith("_dist") or t in ("lookup", "tm", "dense")]
    assert "id_dist" in terms and "emb_dist" in terms
    for term in terms:  # every non-zero term in its own cell, the number the JSON holds
        value = doc["strategies"][label][term]
        if value > 0:
            assert _term(table, label, f"{term} µs") == f"{value * 1e6:.1f}"
    assert max(map(len, dump.splitlines())) <= 120


def test_cost_model_sweep_row_matches_cost_at_that_size():
    """A sweep plans the model's towers at every GPU count (towers change with the host count)."""
    sweep = _run("cost", "--model", DLRM, "--topology", "h100:64", "--compression", "4", "--sweep", "16,64")
    for gpus in ("16", "64"):
        one = _run("cost", "--model", DLRM, "--topology", f"h100:{gpus}", "--compression", "4")
        assert _row(sweep, gpus)[-1] == _term(_table(one), "sptt_tm(c=4)", "speedup")


@pytest.mark.parametrize("argv,message", [
    (["--topology", "h100:64", "--tower-module", "dot"], "--tower-module chooses the plan of --model"),
    (["--topology", "h100:64", "--model", DLRM, "--tower-module", "identity"], "--tower-module identity compresses"),
    (["--topology", "2x4", "--model", DLRM], "topology 2x4 lacks intra_bw"),  # refused before planning
])
def test_cost_option_mistakes_are_two_lines(capsys, monkeypatch, argv, message):
    from dmt_compile.tools import cmd_cost

    monkeypatch.setattr(cmd_cost, "_tower_plan", lambda *a, **k: pytest.fail("planned before the refusal"))
    assert main(["cost", *argv], stdout=io.StringIO()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and message in err[0] and err[1].strip().startswith("fix:"), err
