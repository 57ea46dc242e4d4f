"""The fitted step model: a fit on one set of runs predicts a disjoint set; bands cover unfitted parameters."""
from __future__ import annotations

import pytest

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_fit import (Candidate, StepParams, candidate_from_row, compute_time, fit, held_out_errors,
                                       output_fanout, predict_step, speedup_band, wire_time)

TRUE = StepParams(alpha=200e-6, gap=10e-6, n_half=16e3, eta=0.9, kappa=0.0, c_fixed=2e-3, c_sample=5e-6,
                  c_element=1e-8, c_tm=2e-8, c_interaction=1e-8)


def _run(strategy, c, emulate, rate, batch, wire="fp32"):
    """A bench row whose times come from TRUE (what a perfect model of the box would measure)."""
    n = int(emulate.split("x")[0])
    towers = [[1664, 1664, 1.0, None]] if strategy == "flat" else \
        [[1664 / n, 1664 / n / (c or 1), c or 1, None] for _ in range(n)]
    row = {"run": strategy + (f"@{c:g}" if c else ""), "strategy": strategy, "wire_dtype": wire,
           "descriptor": {"per_tower": towers}, "world": 4 * (n // 2) if n > 1 else 4, "cores": 4,
           "batch_per_rank": batch}
    run = {"row": row, "config": {"emulate": emulate, "inter_bw_bits": rate}, "point": {"rate": rate}}
    cand = candidate_from_row(row)
    row["non_wire_s"] = compute_time(cand, batch, TRUE, row["world"] / 4)
    row["step_time_median_s"] = row["non_wire_s"] + wire_time(cand, emulate, batch, TRUE, rate)
    return run


def test_fit_on_some_runs_predicts_disjoint_runs():
    fitting = [_run(s, c, "2x2", r, b) for s, c in (("flat", None), ("sptt", None), ("sptt_tm", 4.0))
               for r in (2e8, 1e9) for b in (512, 1024)]
    held = [_run(s, c, "2x2", 5e8, 2048) for s, c in (("flat", None), ("sptt_tm", 4.0), ("sptt_tm", 16.0))]
    params = fit(fitting)
    errors = held_out_errors(params, held)
    assert all(abs(e["error"]) < 0.2 for e in errors), errors
    assert {"eta", "alpha", "c_sample"} <= params.fitted and "kappa" not in params.fitted  # one layout only


def test_band_spans_unfitted_parameters_only():
    cand = Candidate("sptt_tm", (832.0, 832.0), (13.0, 13.0), (208.0, 208.0))
    s, (lo, hi) = predict_step(cand, "2x2", 1024, rate_bits=1e9)
    assert lo <= s <= hi and hi > 1.5 * lo
    fixed = StepParams(fitted=frozenset({"alpha", "gap", "n_half", "eta", "kappa"}))
    s2, band = predict_step(cand, "2x2", 1024, fixed, rate_bits=1e9)
    assert band == (s2, s2)
    flat = Candidate("flat", (1664.0,), (26.0,))
    x, (xlo, xhi) = speedup_band(cand, flat, "2x2", 1024, rate_bits=1e9)
    assert 1 < xlo <= x <= xhi  # compressing towers win at every corner of the ranges


def test_bad_inputs_are_typed_errors():
    with pytest.raises(CostModelError, match="unknown strategy"):
        Candidate("magic", (1.0,), (1.0,))
    with pytest.raises(CostModelError, match="at least 3"):
        fit([])
    with pytest.raises(CostModelError, match="inter_bw"):
        predict_step(Candidate("flat", (64.0,), (1.0,)), "2x2", 16)


def test_cost_cli_fits_and_reports_held_out_errors(tmp_path):
    import io
    import json

    from dmt_compile.errors import InputError
    from benchmarks.emulated.fit_runs import run_fit

    def report(rate, batch):
        runs = [_run(s, c, "2x2", rate, batch) for s, c in (("flat", None), ("sptt", None), ("sptt_tm", 4.0))]
        return {"config": runs[0]["config"], "results": [r["row"] for r in runs]}

    fit_files = []
    for i, (rate, batch) in enumerate(((2e8, 512), (1e9, 1024), (2e8, 1024), (1e9, 512))):
        path = tmp_path / f"fit{i}.json"
        path.write_text(json.dumps(report(rate, batch)))
        fit_files.append(str(path))
    held = tmp_path / "held.json"
    held.write_text(json.dumps({"sweep": [{"point": {"batch": 2048}, "config": report(5e8, 2048)["config"],
                                           "results": report(5e8, 2048)["results"]}]}))
    out = io.StringIO()
    assert run_fit(fit_files, [str(held)], out) == 0
    text = out.getvalue()
    assert text.startswith("fitted: ") and text.count("predicted") == 3 and "held-out |error|" in text
    with pytest.raises(InputError, match="both fitted on and held out"):
        run_fit(fit_files, fit_files[:1], io.StringIO())


def test_torchrec_row_wise_sends_world_times_the_pooled_bytes_of_table_wise():
    """RW's output exchange is a reduce-scatter of every rank's partial sums for every sample: on 2x2
    its cross-host embedding bytes are 4x table-wise's; TWRW's cross-host bytes are table-wise's."""
    p = StepParams(alpha=0.0, gap=0.0, n_half=0.0, kappa=0.0, eta=1.0)
    tw, rw, twrw = (Candidate(s, (1664.0,), (0.0,)) for s in ("torchrec_tw", "torchrec_rw", "torchrec_twrw"))
    t_tw = wire_time(tw, "2x2", 1024, p, rate_bits=1e9)
    assert wire_time(rw, "2x2", 1024, p, rate_bits=1e9) == pytest.approx(4 * t_tw)
    assert wire_time(twrw, "2x2", 1024, p, rate_bits=1e9) == pytest.approx(t_tw)
    assert output_fanout(rw, 8) == 8 and output_fanout(tw, 8) == 1
