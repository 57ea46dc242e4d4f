"""The fitted step model as strategy="auto"'s predictor: parameter files (save / load / refuse), prices that
match `cost_fit`, the held-out error as the band that makes a choice uncertain, the default predictor per
topology, `cost --fit --save` and `plan --cost-params`."""
from __future__ import annotations

import io
import json

import pytest

from dmt_compile import choose_strategy
from dmt_compile.errors import CostModelError
from dmt_compile.strategy import CostModelPredictor, FittedPredictor, default_predictor
from dmt_compile.strategy.fitted_default import DEFAULT_PARAMS
from dmt_compile.strategy.fitted_predict import UNVALIDATED_ERROR
from dmt_compile.tools.cli import main
from dmt_compile.topo import Topology
from dmt_compile.topo.cost_fit import Candidate as FitCandidate
from dmt_compile.topo.cost_fit import StepParams, compute_time, wire_time
from dmt_compile.topo.fitted_params import SCHEMA, FittedParams
from helpers import load_model

TRUE = StepParams(alpha=200e-6, gap=10e-6, n_half=16e3, eta=0.9, kappa=0.0, c_fixed=2e-3, c_sample=5e-6,
                  c_element=1e-8, c_tm=2e-8, c_interaction=1e-8, fitted=frozenset({"alpha", "eta"}))
CPU = Topology(2, 2, inter_bw=1e9 / 8 / 2)  # a 1 Gbit/s host NIC, no flop rate: the bench's kind


def _fitted(error: float | None) -> FittedParams:
    held = None if error is None else {"runs": 9, "max_abs_error": error, "mean_abs_error": error / 2}
    return FittedParams(TRUE, held, ("a.json",), ("b.json",), "test box", 1.0)


@pytest.fixture(scope="module")
def dlrm():
    return load_model("example:dlrm")


def _choose(dlrm, predictor, topology=CPU, **kw):
    model, inputs = dlrm
    return choose_strategy(model, topology, inputs, predictor=predictor, log=None, batch_per_rank=512, **kw)


def test_parameter_file_round_trips_and_bad_files_are_typed_errors(tmp_path):
    path = tmp_path / "p.json"
    _fitted(0.12).save(str(path))
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA and doc["held_out"]["max_abs_error"] == 0.12
    back = FittedParams.load(str(path))
    assert back.params == TRUE and back.held_out_error == 0.12 and back.fitted_on == ("a.json",)
    assert FittedPredictor(back).rel_error == 0.12 and FittedPredictor(_fitted(None)).rel_error == UNVALIDATED_ERROR
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CostModelError, match="not JSON"):
        FittedParams.load(str(tmp_path / "bad.json"))
    with pytest.raises(CostModelError, match="not a fitted parameter file"):
        FittedParams.from_dict({"schema": "other"})
    broken = dict(doc, params=dict(doc["params"], eta=-1))
    with pytest.raises(CostModelError, match="'eta'"):
        FittedParams.from_dict(broken)
    with pytest.raises(CostModelError, match="cannot read"):
        FittedParams.load(str(tmp_path / "missing.json"))


def test_prices_match_the_fitted_step_model(dlrm):
    choice = _choose(dlrm, FittedPredictor(_fitted(0.1)))
    assert choice.predictor.startswith("fitted step model (test box; held-out error ≤ 10 % on 9 runs)")
    for key, kind in (("flat/fp32", "flat"), ("sptt/identity/fp32", "sptt"), ("sptt/dot/c=4/hierarchical/fp32", "sptt_tm")):
        row = choice.row(key)
        c = row.candidate
        fc = FitCandidate(kind, tuple(t.width_in for t in c.towers), tuple(t.ids for t in c.towers),
                          tuple(t.width_out for t in c.towers) if kind == "sptt_tm" else None, 4.0)
        assert row.prediction.comm_s == pytest.approx(wire_time(fc, CPU, 512, TRUE))
        assert row.prediction.compute_s == pytest.approx(compute_time(fc, 512, TRUE))
        assert row.prediction.seconds == pytest.approx(row.prediction.compute_s + row.prediction.comm_s)
        assert row.prediction.rel_error == 0.1
    # a bf16 wire halves the embedding bytes (ids stay 8 bytes each); decoders pay their matrices
    fp32, bf16 = choice.row("sptt/identity/fp32").prediction, choice.row("sptt/identity/bf16").prediction
    assert bf16.cross_host_bytes < fp32.cross_host_bytes and bf16.comm_s < fp32.comm_s
    dec, hier = choice.row("sptt/dot/c=4/decoder/fp32").prediction, choice.row("sptt/dot/c=4/hierarchical/fp32").prediction
    assert dec.compute_s > hier.compute_s


def test_the_held_out_error_decides_whether_the_choice_is_uncertain(dlrm):
    fast = Topology(2, 2, inter_bw=1e11 / 8 / 2)  # compute-bound: exact candidates, priced apart, lead
    sure = _choose(dlrm, FittedPredictor(_fitted(1e-6)), fast)
    unsure = _choose(dlrm, FittedPredictor(_fitted(10.0)), fast)
    assert sure.margin > 1e-6 and not sure.uncertain
    assert unsure.uncertain and "uncertain: the predictor's error (±1000 %) exceeds the margin" in str(unsure)
    if sure.chosen != "flat/fp32":  # a rewrite that a ±1000 % predictor cannot tell from flat: flat is kept
        assert unsure.chosen == "flat/fp32" and unsure.runner_up == sure.chosen
        assert f"kept flat: {sure.chosen} is predicted" in str(unsure)


def test_default_predictor_per_topology(dlrm):
    gpu, note = default_predictor(_preset("h100:16"))
    assert isinstance(gpu, CostModelPredictor)
    if DEFAULT_PARAMS is None:
        assert "no fitted parameter set is shipped" in note
        return
    assert "analytic cost model" in note and "--cost-params" in note
    cpu, note = default_predictor(CPU)
    assert isinstance(cpu, FittedPredictor) and note is None
    assert cpu.fitted.held_out_error is not None  # the shipped set was validated on held-out reports
    choice = _choose(dlrm, None)
    assert choice.predictor == cpu.name


def _preset(spec):
    from dmt_compile.topo import as_topology

    return as_topology(spec)


def test_cost_fit_save_then_plan_cost_params(tmp_path):
    from benchmarks.emulated.fit_runs import run_fit

    def report(rate, batch):
        rows = []
        for strategy, c in (("flat", None), ("sptt", None), ("sptt_tm", 4.0)):
            towers = [[1664, 1664, 1.0, None]] if strategy == "flat" else [[832, 832 / (c or 1), c or 1, None]] * 2
            row = {"run": strategy, "strategy": strategy, "wire_dtype": "fp32", "descriptor": {"per_tower": towers},
                   "world": 4, "cores": 4, "batch_per_rank": batch}
            cand = FitCandidate(strategy, tuple(float(t[0]) for t in towers), tuple(t[0] / 64 for t in towers),
                                tuple(float(t[1]) for t in towers) if strategy == "sptt_tm" else None)
            row["non_wire_s"] = compute_time(cand, batch, TRUE)
            row["step_time_median_s"] = row["non_wire_s"] + wire_time(cand, "2x2", batch, TRUE, rate)
            rows.append(row)
        rows.append(dict(rows[0], strategy="auto", run="auto"))  # the auto row is not fitted on
        return {"config": {"emulate": "2x2", "inter_bw_bits": rate}, "results": rows}

    paths = []
    for i, (rate, batch) in enumerate(((2e8, 512), (1e9, 1024), (2e8, 1024), (1e9, 512), (5e8, 2048))):
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(report(rate, batch)))
    saved = tmp_path / "params.json"
    out = io.StringIO()
    assert main(["cost", "--fit", ",".join(map(str, paths[:4])), "--held-out", str(paths[4]), "--save", str(saved)],
                stdout=out) == 0
    assert f"saved the parameters to {saved}" in out.getvalue()
    fitted = FittedParams.load(str(saved))
    assert fitted.held_out["runs"] == 3 and fitted.held_out_error < 0.2 and len(fitted.fitted_on) == 4
    plan = io.StringIO()
    assert main(["plan", "examples/dlrm.py:factory", "--topology", "h100:16", "--strategy", "auto",
                 "--cost-params", str(saved), "--format", "json"], stdout=plan) == 0
    doc = json.loads(plan.getvalue())["auto"]
    assert doc["predictor"].startswith("fitted step model") and doc["candidates"][0]["rel_error"] == fitted.held_out_error
    err = io.StringIO()
    assert main(["cost", "--topology", "h100:16", "--save", str(saved)], stdout=err) != 0


def test_tower_modules_are_priced_by_their_flops_relative_to_the_fitted_one(dlrm):
    from dataclasses import replace

    from dmt_compile.strategy.tm_cost import tm_flops_params

    choice = _choose(dlrm, FittedPredictor(replace(_fitted(0.1), tower_module="dot")))
    dot, cross = (choice.row(f"sptt/{tm}/c=4/hierarchical/fp32") for tm in ("dot", "cross"))
    towers = cross.candidate.towers
    scale = sum(t.tm_flops for t in towers) / sum(tm_flops_params("dot", *t.tm_shape)[0] for t in towers)
    d_in = sum(t.width_in for t in towers)
    assert scale != 1.0 and cross.prediction.seconds != dot.prediction.seconds  # no tie at equal widths
    assert cross.prediction.compute_s - dot.prediction.compute_s == pytest.approx(512 * TRUE.c_tm * d_in * (scale - 1))
    assert cross.prediction.comm_s == dot.prediction.comm_s
