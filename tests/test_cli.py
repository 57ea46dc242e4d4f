"""The `dmt-compile` CLI: dump formats, --dump-dir, plan, cost, topo; exit codes."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from conftest import ROOT
from dmt_compile.tools.cli import main

DLRM = os.path.join(ROOT, "examples", "dlrm.py") + ":factory"


def run(*argv: str) -> str:
    out = io.StringIO()
    assert main(list(argv), stdout=out) == 0
    return out.getvalue()


def test_dump_table_shows_plan_and_boundaries():
    text = run("dump", DLRM, "--topology", "2x4", "--format", "full")
    assert "TowerPlan: 2 towers on topology 2x4" in text
    for needle in ("dmt.ids_exchange", "dmt.outputs_exchange", "dmt.tower0_tm [IdentityTowerModule]"):
        assert needle in text


def test_dump_with_a_preset_prints_the_predicted_cost():
    text = run("dump", DLRM, "--topology", "h100:64", "--tower-module", "linear", "--compression", "4")
    assert "predicted embedding stage per rank per step of this plan's towers on dgx-h100 (64 GPUs" in text
    speedup = next(line for line in text.splitlines() if line.startswith("| speedup "))
    flat, tm = [c.strip() for c in speedup.strip("|").split("|")][1:]  # columns: flat, sptt_tm(c=4)
    assert flat == "1.00x" and float(tm.rstrip("x")) > 1.0
    assert "has no bandwidths" in run("dump", DLRM, "--topology", "2x2")


def test_dump_json_is_sorted_and_parses():
    text = run("dump", DLRM, "--topology", "2x2", "--tower-module", "linear", "--compression", "4", "--format", "json")
    doc = json.loads(text)
    assert doc["plan"]["tower_module"] == "linear"
    assert {n["role"] for n in doc["nodes"]} >= {"ids_exchange", "lookup", "tower_module", "outputs_exchange"}
    assert text == json.dumps(doc, sort_keys=True, indent=2) + "\n"


def test_dump_dot_has_tower_clusters():
    text = run("dump", DLRM, "--topology", "2x2", "--format", "dot")
    assert text.startswith('digraph "dmt"')
    assert "subgraph cluster_tower0" in text and "subgraph cluster_tower1" in text


def test_dump_code_is_python():
    text = run("dump", DLRM, "--topology", "2x2", "--format", "code")
    compile(text, "<dump>", "exec")


def test_dump_dir_writes_graph_after_every_pass(tmp_path):
    run("dump", DLRM, "--topology", "2x2", "--dump-dir", str(tmp_path))
    names = sorted(os.listdir(tmp_path))
    assert names == ["00_capture.txt", "01_split-collections.txt", "02_batch-major-lookups.txt", "03_split-tables.txt",
                     "04_detect.txt", "05_plan-towers.txt", "06_plan-feed.txt", "07_sptt-rewrite.txt",
                     "08_insert-tower-modules.txt"]
    assert "TowerPlan" in (tmp_path / "05_plan-towers.txt").read_text()
    assert "ids_exchange" in (tmp_path / "07_sptt-rewrite.txt").read_text()


def test_plan_subcommand_json():
    doc = json.loads(run("plan", DLRM, "--topology", "2x2", "--format", "json"))
    assert len(doc["towers"]) == 2 and sum(len(t) for t in doc["towers"]) == 26


def test_cost_and_topo_subcommands():
    assert "sptt_tm(c=4)" in run("cost", "--topology", "h100:64")
    assert "2 x 2" in run("topo", "2x2")


def test_bad_topology_exit_code(capsys):
    assert main(["dump", DLRM, "--topology", "2by2"], stdout=io.StringIO()) == 2
    assert "TopologyError" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "dmt_compile", "plan", DLRM, "--topology", "2x2"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "TowerPlan" in proc.stdout


def test_bench_and_train_without_the_applications_say_how_to_get_them(monkeypatch, capsys):
    """An installed wheel has no `benchmarks` package: the typed error (problem, fix), no traceback."""
    import pytest

    from dmt_compile.tools import applications

    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # import benchmarks -> ModuleNotFoundError
    monkeypatch.setattr(applications, "_checkout_root", lambda: None)
    for command in ("bench", "train"):
        assert main([command]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and err[0].startswith("dmt-compile: error: InputError:"), err
        assert f"`{command}` needs the `benchmarks` package" in err[0]
        assert err[1].strip().startswith("fix: run it from a checkout") and f"dmt_compile {command}" in err[1]

    def missing_dependency(name):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(applications.importlib, "import_module", missing_dependency)
    with pytest.raises(ModuleNotFoundError, match="matplotlib"):  # what the application lacks is not hidden
        applications.load_application("emulated.report", "bench")


def test_applications_load_from_the_checkout_when_not_on_the_path(monkeypatch):
    from dmt_compile.tools import applications

    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p or ".") != ROOT])
    assert applications.load_application("quality.metrics", "train").auc is not None
