"""`bench --strategy auto`: the choice for the bench's setting, the auto row (reused samples or its own run),
the worker building the chosen candidate, and the acceptance check on sweep reports."""
from __future__ import annotations

import io
import json

import pytest

from benchmarks.emulated.auto_acceptance import check_point, check_report, main as acceptance_main
from benchmarks.emulated.auto_row import add_auto_rows, choose_for_bench, matching_run
from benchmarks.emulated.runner import BenchConfig, strategy_list
from dmt_compile.strategy import Candidate
from dmt_compile.topo.cost_fit import StepParams
from dmt_compile.topo.fitted_params import FittedParams

RUNS = [("flat", None, "fp32"), ("sptt", None, "fp32"), ("sptt_tm", 4.0, "fp32"), ("sptt_tm", 16.0, "fp32"),
        ("flat", None, "bf16")]


def test_matching_run_maps_candidates_onto_the_bench_runs():
    assert matching_run(Candidate("flat", feed="flat"), "dot", "hierarchical", RUNS) == ("flat", None, "fp32")
    assert matching_run(Candidate("flat", feed="flat", wire_dtype="bf16"), "dot", "auto", RUNS) == ("flat", None, "bf16")
    assert matching_run(Candidate("sptt"), "dot", "auto", RUNS) == ("sptt", None, "fp32")
    dot4 = Candidate("sptt", "dot", 4.0, "hierarchical")
    assert matching_run(dot4, "dot", "hierarchical", RUNS) == ("sptt_tm", 4.0, "fp32")
    assert matching_run(dot4, "dot", "auto", RUNS) == ("sptt_tm", 4.0, "fp32")
    assert matching_run(dot4, "linear", "hierarchical", RUNS) is None  # another Tower Module
    assert matching_run(Candidate("sptt", "dot", 4.0, "decoder"), "dot", "auto", RUNS) is None
    assert matching_run(Candidate("sptt", "dot", 8.0, "hierarchical"), "dot", "auto", RUNS) is None
    assert matching_run(Candidate("sptt", wire_dtype="fp16"), "dot", "auto", RUNS) is None


def _row(run, strategy, samples, **kw):
    return {"run": run, "strategy": strategy, "wire_dtype": kw.pop("wire", "fp32"), "step_samples_s": samples,
            "step_time_median_s": sorted(samples)[len(samples) // 2], **kw}


def _info(chosen, reused=None, exact=True):
    return {"chosen": chosen, "reused_samples_of": reused, "exact": exact, "uncertain": False,
            "predicted_step_s": 0.1, "predicted_rel_error": 0.1, "runner_up": None, "margin": None,
            "describe": chosen, "choose_s": 1.0, "quality": "not checked"}


def test_auto_row_reuses_a_timed_run_or_renames_its_own():
    rows = [_row("flat", "flat", [1.0] * 30), _row("sptt", "sptt", [0.8] * 30)]
    non_wire = {"flat": 0.3, "sptt": 0.2}
    add_auto_rows(rows, {"info": _info("sptt/identity/fp32", "sptt")}, non_wire)
    auto = rows[-1]
    assert auto["run"] == auto["strategy"] == "auto" and auto["step_samples_s"] == rows[1]["step_samples_s"]
    assert auto["auto"]["reused_samples_of"] == "sptt" and non_wire["auto"] == 0.2 and len(rows) == 3
    own = [_row("flat", "flat", [1.0] * 30), _row("auto+bf16", "auto", [0.7] * 30, wire="bf16")]
    nw = {"flat": 0.3, "auto+bf16": 0.25}
    add_auto_rows(own, {"info": _info("sptt/dot/c=4/decoder/bf16", exact=False)}, nw)
    assert own[1]["run"] == "auto" and nw == {"flat": 0.3, "auto": 0.25} and len(own) == 2


def test_acceptance_verdicts_are_paired_and_ci_aware():
    flat = _row("flat", "flat", [1.0 + 0.01 * (i % 3) for i in range(30)])
    tm = _row("sptt_tm@4", "sptt_tm", [0.5] * 30, delta_auc={"synthetic": {"median": -0.0001}})
    near = _row("auto", "auto", [0.52] * 30, auto=_info("x"))
    p = check_point([flat, tm, near])
    assert p["best"]["run"] == "sptt_tm@4" and p["best"]["verdict"] == "pass" and p["flat"]["verdict"] == "pass"
    assert p["best"]["auto_over_best"]["median"] == pytest.approx(1.04) and p["ok"]
    slow = _row("auto", "auto", [1.2] * 30, auto=_info("x"))
    p = check_point([flat, tm, slow])
    assert p["best"]["verdict"] == "fail" and p["flat"]["verdict"] == "fail" and not p["ok"]
    noisy = _row("auto", "auto", [0.50 if i % 2 else 0.60 for i in range(30)], auto=_info("x"))
    p = check_point([flat, tm, noisy])  # median 1.1x the best, but the interval reaches 1.0
    assert p["best"]["verdict"] in ("within CI", "fail") and p["best"]["auto_over_best"]["ci95"][0] <= 1.05
    # an unmeasured inexact run is not a candidate auto may choose (unless --any-quality)
    unmeasured = _row("sptt_tm@16", "sptt_tm", [0.3] * 30)
    p = check_point([flat, tm, unmeasured, near])
    assert p["best"]["run"] == "sptt_tm@4" and p["best_any_quality"] == "sptt_tm@16"
    assert check_point([flat, tm, unmeasured, near], any_quality=True)["best"]["run"] == "sptt_tm@16"
    reused = _row("auto", "auto", list(tm["step_samples_s"]), auto=_info("x", "sptt_tm@4"))
    p = check_point([flat, tm, reused])
    assert p["best"]["auto_over_best"]["median"] == 1.0 and p["best"]["auto_over_best"]["same_samples"]
    assert check_point([flat, tm]) == {"ok": False, "why": "no auto row (run the bench with --strategy auto)"}


def test_acceptance_cli_on_a_sweep_report(tmp_path, capsys):
    flat = _row("flat", "flat", [1.0] * 30)
    good = {"point": {"wire_share": 0.8}, "results": [flat, _row("auto", "auto", [0.9] * 30, auto=_info("y"))]}
    bad = {"point": {"wire_share": 0.1}, "results": [flat, _row("auto", "auto", [1.1] * 30, auto=_info("z"))]}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"sweep": [good]}))
    assert acceptance_main([str(path)]) == 0
    assert "wire_share=0.8: auto chose y" in capsys.readouterr().out
    path.write_text(json.dumps({"sweep": [good, bad]}))
    assert acceptance_main([str(path), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and [p["ok"] for p in doc["reports"][str(path)]["points"]] == [True, False]
    assert check_report({"sweep": [good]})["ok"]


@pytest.fixture(scope="module")
def params_file(tmp_path_factory):
    p = StepParams(alpha=200e-6, gap=10e-6, n_half=16e3, eta=0.9, c_fixed=2e-3, c_sample=5e-6, c_element=1e-8,
                   c_tm=2e-8, c_interaction=1e-8, fitted=frozenset({"alpha", "eta"}))
    path = tmp_path_factory.mktemp("params") / "p.json"
    FittedParams(p, {"runs": 5, "max_abs_error": 0.08, "mean_abs_error": 0.04}, hardware="test box").save(str(path))
    return str(path)


@pytest.mark.parametrize("rate", [2e7, 1e10])
def test_choice_for_the_bench_setting_and_the_worker_builds_it(params_file, rate):
    from benchmarks.emulated.worker import BenchOptions, _load, _transform

    cfg = BenchConfig(compressions=(4.0, 16.0), tower_module="dot", feed="hierarchical", strategies=("flat", "sptt", "sptt_tm", "auto"),
                      cost_params=params_file)
    runs = strategy_list(cfg)[0]
    assert cfg.with_auto and all(r[0] != "auto" for r in runs)
    auto = choose_for_bench(cfg, rate, 2.0, runs)
    info = auto["info"]
    assert info["predictor"].startswith("fitted step model (test box") and info["predicted_rel_error"] == 0.08
    assert info["predicted_step_s"] == min(s for k, s in info["predicted"].items() if k == info["chosen"])
    assert info["quality"] == "not checked" and info["choose_s"] > 0
    assert (auto["run"] is None) == (info["reused_samples_of"] is None)
    if rate < 1e8:  # a slow NIC: the wire dominates, a compressing candidate wins
        assert "/c=" in info["chosen"]
    else:  # a fast NIC: the Tower Modules' compute does not pay
        assert "/c=" not in info["chosen"]
    opts = BenchOptions(tuple(runs), cfg.spec, 2, 2, 8, 1, 0, feed=cfg.feed, tower_module=cfg.tower_module,
                        auto=tuple(sorted(auto["kwargs"].items())))
    model, inputs = _load(cfg.spec, 32)
    dmt = _transform("auto", None, opts, model, inputs, auto["wire"])
    assert [d.width_out or d.width_in for d in dmt.plan.details] == pytest.approx(info["tower_widths_out"])
    assert dmt.wire_dtype == auto["wire"]
