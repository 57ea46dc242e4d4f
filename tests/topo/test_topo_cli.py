"""The `cost` and `topo` subcommands through a parser built with register."""
import argparse
import io
import json
import sys

import pytest

from dmt_compile.errors import CostModelError, TopologyError
from dmt_compile.tools.cmd_cost import register, run_cost


def _run(*argv):
    parser = argparse.ArgumentParser(prog="dmt-compile")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    out = io.StringIO()
    code = args.func(args, out)
    return code, out.getvalue()


def test_cost_table():
    code, text = _run("cost", "--topology", "h100:64", "--features", "26", "--dim", "128", "--batch", "1024")
    assert code == 0
    for name in ("flat", "twrw", "sptt", "sptt_tm(c=4)", "sptt_tm(c=16)", "speedup", "emb_dist"):
        assert name in text


def test_cost_json_is_stable_and_sorted():
    argv = ("cost", "--topology", "a100:16", "--compression", "8", "--format", "json", "--strategies", "flat,sptt,sptt_tm")
    code, text = _run(*argv)
    assert code == 0 and text == _run(*argv)[1]
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert set(data["strategies"]) == {"flat", "sptt", "sptt_tm(c=8)"}
    assert data["strategies"]["flat"]["speedup"] == 1.0


def test_cost_sweep_and_params():
    code, text = _run("cost", "--topology", "h100:16", "--sweep", "16,64,512", "--param", "congestion=0.07")
    assert code == 0 and text.count("\n|") >= 4 and "512" in text
    code, text = _run("cost", "--topology", "h100:16", "--sweep", "16,32", "--format", "json")
    assert set(json.loads(text)["sweep"]) == {"16", "32"}


def test_cost_errors():
    with pytest.raises(TopologyError):
        _run("cost", "--topology", "h100:60")
    with pytest.raises(CostModelError):
        _run("cost", "--topology", "2x4")  # no bandwidths
    with pytest.raises(CostModelError):
        _run("cost", "--topology", "h100:16", "--param", "congestion")
    with pytest.raises(CostModelError):
        _run("cost", "--topology", "h100:16", "--sweep", "16,x")
    with pytest.raises(CostModelError):
        _run("cost", "--topology", "h100:16", "--strategies", "flat,magic")
    with pytest.raises(CostModelError):
        _run("cost", "--topology", "h100:16", "--plot", "x.png")  # plot needs a sweep


def test_plot_without_matplotlib_is_clear(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(CostModelError) as info:
        _run("cost", "--topology", "h100:16", "--sweep", "16,32", "--plot", str(tmp_path / "s.png"))
    assert "matplotlib" in str(info.value)


def test_model_flag_reads_feature_widths_from_the_model():
    import os

    spec = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "dlrm.py") + ":factory"
    code, text = _run("cost", "--topology", "h100:16", "--model", spec, "--format", "json")
    widths = json.loads(text)["config"]["feature_widths"]
    assert code == 0 and widths and all(w > 0 for w in widths)


def test_run_cost_direct_namespace():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["cost", "--topology", "h800:32", "--strategies", "flat,sptt"])
    out = io.StringIO()
    assert run_cost(args, out) == 0 and "h800" in out.getvalue()


@pytest.mark.parametrize("fmt,needle", [("text", "device mesh"), ("json", '"num_hosts": 8'), ("dot", "graph ")])
def test_topo(fmt, needle):
    code, text = _run("topo", "grand-teton:64", "--format", fmt)
    assert code == 0 and needle in text
    if fmt == "json":
        assert json.loads(text)["levels"][0]["name"] == "rack"
