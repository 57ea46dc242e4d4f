"""The fitted step model: a fit on one set of runs predicts a disjoint set; bands cover unfitted parameters."""
from __future__ import annotations

from dataclasses import replace

import pytest

from dmt_compile.errors import CostModelError
from dmt_compile.topo.cost_fit import (BatchShape, Candidate, StepParams, candidate_from_row, compute_time, fit,
                                       held_out_errors, loopback_bytes, output_fanout, predict_step, speedup_band,
                                       wire_time)

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
    its cross-host embedding bytes are 4x table-wise's; TWRW's cross-host bytes are table-wise's, plus
    its loopback reduce-scatter / all-gather."""
    p = StepParams(alpha=0.0, gap=0.0, n_half=0.0, kappa=0.0, eta=1.0, loopback=1e8)
    tw, rw, twrw = (Candidate(s, (1664.0,), (0.0,)) for s in ("torchrec_tw", "torchrec_rw", "torchrec_twrw"))
    t_tw = wire_time(tw, "2x2", 1024, p, rate_bits=1e9)
    assert wire_time(rw, "2x2", 1024, p, rate_bits=1e9) == pytest.approx(4 * t_tw)
    assert wire_time(twrw, "2x2", 1024, p, rate_bits=1e9) == pytest.approx(t_tw + 2 * 1024 * 1664 * 4 / 1e8)
    assert output_fanout(rw, 8) == 8 and output_fanout(tw, 8) == 1


def test_loopback_bytes_of_twrw_by_hand():
    """TWRW on 2x2, b = 1024, D = 1664, fp32: each rank pools 4,096 samples x 832 partial sums, sends
    half of them in the reduce-scatter (6.8 MB) and as much back in the all-gather: 13.6 MB. Other
    strategies: 0 (their intra-host bytes are in the fitted non-wire times)."""
    twrw = Candidate("torchrec_twrw", (1664.0,), (26.0,))
    assert loopback_bytes(twrw, 2, 2, 1024) == 2 * 1 * 1024 * 1664 * 4 == 13_631_488
    assert loopback_bytes(replace(twrw, wire_bytes=2.0), 2, 4, 256) == 2 * 3 * 256 * 1664 * 2  # 2x4, bf16
    assert loopback_bytes(Candidate("torchrec_tw", (1664.0,), (26.0,)), 2, 2, 1024) == 0.0
    assert loopback_bytes(twrw, 4, 1, 1024) == 0.0  # one rank per host: nothing to reduce-scatter
    no_rate = StepParams(eta=1.0)
    with pytest.raises(CostModelError, match="loopback"):
        wire_time(twrw, "2x2", 1024, no_rate, rate_bits=1e9)
    # at 100 MB/s the 13.6 MB add 136.3 ms to table-wise's wire time
    p = StepParams(alpha=0.0, gap=0.0, n_half=0.0, eta=1.0, loopback=1e8)
    extra = wire_time(twrw, "2x2", 1024, p, rate_bits=1e9) - wire_time(replace(twrw, strategy="torchrec_tw"), "2x2",
                                                                       1024, p, rate_bits=1e9)
    assert extra == pytest.approx(0.13631488)


def test_duplex_stretches_torchrec_exchanges_only():
    """h = 0.5: a TorchRec exchange's transfer takes 1.5x; this runtime's (flat, SPTT) is unchanged."""
    p0 = StepParams(alpha=0.0, gap=0.0, n_half=0.0, eta=1.0)
    p5 = replace(p0, duplex=0.5)
    tw, flat = Candidate("torchrec_tw", (1664.0,), (26.0,)), Candidate("flat", (1664.0,), (26.0,))
    # 2x2, b = 1024: X = 2 * 1/2 * 1024 * (8 * 26 + 2 * 4 * 1664) = 13,844,480 bytes at 1e8 B/s
    assert wire_time(tw, "2x2", 1024, p0, rate_bits=8e8) == pytest.approx(0.1384448)
    assert wire_time(tw, "2x2", 1024, p5, rate_bits=8e8) == pytest.approx(1.5 * 0.1384448)
    assert wire_time(flat, "2x2", 1024, p5, rate_bits=8e8) == pytest.approx(0.1384448)


def test_batch_shape_fixed_share_and_knee_by_hand():
    """cpu(b) = 0.1 + 1e-4 b + 1e-8 b^2: at b = 1000 the fixed share is 0.1 / 0.21; the per-sample cost
    doubles at b = 1e-4 / 1e-8 = 10,000. compute_time with that knee: k (c_fixed + b c (1 + b / knee))."""
    pts = [(b, 0.1 + 1e-4 * b + 1e-8 * b * b) for b in (250, 1000, 4000)]
    shape = BatchShape.from_points(pts)
    assert shape.fixed == pytest.approx(0.1) and shape.per_sample == pytest.approx(1e-4)
    assert shape.fixed_share(1000) == pytest.approx(0.1 / 0.21) and shape.knee == pytest.approx(1e4)
    with pytest.raises(CostModelError, match="3 or more"):
        BatchShape.from_points(pts[:2])
    p = StepParams(c_fixed=0.01, c_sample=1e-5, batch_knee=1e4)
    flat = Candidate("flat", (1664.0,), (26.0,))
    assert compute_time(flat, 1000, p, 2.0) == pytest.approx(2 * (0.01 + 1000 * 1e-5 * 1.1))


def test_runtime_packing_is_charged_to_this_runtime_only():
    """c_runtime per element per sample: flat and SPTT pay b D_in c_runtime, TorchRec's rows nothing."""
    p = StepParams(c_runtime=1e-8)
    assert compute_time(Candidate("flat", (1664.0,), (26.0,)), 1024, p) == pytest.approx(1024 * 1664 * 1e-8)
    assert compute_time(Candidate("torchrec_tw", (1664.0,), (26.0,)), 1024, p) == 0.0


def test_fit_with_a_batch_shape_recovers_the_fixed_part_at_one_batch():
    """Runs at one batch cannot split fixed from per-sample time; a batch shape taken elsewhere can:
    the fit then predicts another batch size."""
    true = replace(TRUE, c_fixed=0.05, c_sample=1e-4, c_element=0.0, c_tm=0.0, c_interaction=0.0)
    shape = BatchShape(fixed=0.05, per_sample=1e-4)  # the shape of `true` (k = 1)
    runs = []
    for s, c in (("flat", None), ("sptt_tm", 4.0)):
        for r in (2e8, 1e9):
            run = _run(s, c, "2x2", r, 1024)
            run["row"]["cores"] = run["row"]["world"]  # k = 1
            cand = candidate_from_row(run["row"])
            run["row"]["non_wire_s"] = compute_time(cand, 1024, true)
            run["row"]["step_time_median_s"] = run["row"]["non_wire_s"] + wire_time(cand, "2x2", 1024, TRUE, r)
            runs.append(run)
    p = fit(runs, shape)
    flat = Candidate("flat", (1664.0,), (26.0,))
    assert p.c_fixed == pytest.approx(0.05)
    assert compute_time(flat, 256, p) == pytest.approx(compute_time(flat, 256, true), rel=1e-6)
    assert "duplex" not in p.fitted  # no TorchRec rows to fit it on


def test_parameter_sets_written_before_the_new_terms_still_load():
    """A set without duplex, loopback, batch_knee and c_runtime loads them at their defaults (0: off)."""
    from dmt_compile.topo.fitted_params import SCHEMA, FittedParams

    old = {"alpha": 2e-4, "gap": 5e-5, "n_half": 0.0, "eta": 1.0, "kappa": 0.1, "c_fixed": 0.0, "c_sample": 1e-5,
           "c_element": 0.0, "c_tm": 3e-8, "c_interaction": 3e-8, "fitted": ["alpha", "eta"]}
    p = FittedParams.from_dict({"schema": SCHEMA, "params": old}).params
    assert (p.duplex, p.loopback, p.batch_knee, p.c_runtime) == (0.0, 0.0, 0.0, 0.0) and p.kappa == 0.1


def test_compute_fit_is_non_negative_without_shifting_other_rows():
    """A term whose unconstrained coefficient is negative is dropped and the rest refitted: flat's
    predicted compute stays its measured one (clipping the negative term to 0 would inflate it)."""
    runs = []
    for s, c, y in (("flat", None, 0.15), ("sptt_tm", 4.0, 0.18), ("flat", None, 0.15), ("sptt_tm", 4.0, 0.18)):
        run = _run(s, c, "2x2", 1e9, 1024)
        run["row"]["non_wire_s"] = y
        runs.append(run)
    p = fit(runs)
    flat = candidate_from_row(runs[0]["row"])
    assert min(getattr(p, k) for k in ("c_sample", "c_tm", "c_interaction", "c_runtime")) >= 0
    assert compute_time(flat, 1024, p, 1.0) == pytest.approx(0.15, rel=1e-6)


def test_micro_benchmarks_give_a_batch_shape_and_a_loopback_rate(tmp_path):
    """fit_runs reads profile_step's CPU per step at 3 batches (each run's curve normalised to batch
    1,024, then averaged) and the loopback micro-benchmark's median rate; nothing there: (None, 0)."""
    import json

    from benchmarks.emulated.fit_runs import micro_benchmarks

    for b in (256, 1024, 4096):
        cpu = {"flat": 0.1 + 1e-4 * b + 1e-8 * b * b, "sptt_tm@4.0": 2 * (0.1 + 1e-4 * b + 1e-8 * b * b)}
        (tmp_path / f"cpu_batch_{b}.json").write_text(json.dumps(
            {"args": {"per_rank_batch": b}, "runs": {k: {"cpu_s_all_ranks": [v] * 3} for k, v in cpu.items()}}))
    (tmp_path / "loopback_rate.json").write_text(json.dumps({"loopback_bytes_per_s_median": 1.5e8}))
    shape, rate = micro_benchmarks(str(tmp_path))
    total = 0.1 + 1e-4 * 1024 + 1e-8 * 1024 ** 2
    assert shape.fixed == pytest.approx(0.1 / total) and shape.knee == pytest.approx(1e4) and rate == 1.5e8
    assert micro_benchmarks(str(tmp_path / "none")) == (None, 0.0)
