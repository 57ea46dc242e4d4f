"""Re-choosing the auto row of a recorded report: the bench's chooser at the point's recorded
settings; a choice the report timed reuses that run's row, any other needs a rerun."""
from __future__ import annotations

from benchmarks.emulated.rechoose_auto import rechoose_report

CONFIG = {"emulate": "2x2", "model": "benchmarks.emulated.model:factory", "per_rank_batch": 1024,
          "tower_module": "dot", "feed": "hierarchical", "inter_bw_bits": 200e6, "pinned_cores": [0, 1]}


def _row(run, strategy, c=None, samples=(1.0, 1.1)):
    return {"run": run, "strategy": strategy, "wire_dtype": "fp32", "compression_requested": c,
            "step_samples_s": list(samples)}


def test_a_timed_choice_reuses_that_runs_samples():
    rows = [_row("flat", "flat"), _row("sptt", "sptt"), _row("sptt_tm@4", "sptt_tm", 4.0, (0.3, 0.31)),
            dict(_row("auto", "auto"), auto={"chosen": "sptt/linear/c=16/decoder/fp32"})]
    report = {"config": CONFIG, "results": rows, "non_wire_s": {"flat": 0.1, "sptt_tm@4": 0.05}}
    new = rechoose_report(report)
    (what,) = new["rechosen"]["points"]
    assert what["before"] == "sptt/linear/c=16/decoder/fp32" and not new["needs_rerun"]
    auto = next(r for r in new["results"] if r["strategy"] == "auto")
    assert auto["auto"]["chosen"] == what["after"] and auto["auto"]["reused_samples_of"] == what["reused"]
    source = next(r for r in new["results"] if r["run"] == what["reused"])
    assert auto["step_samples_s"] == source["step_samples_s"]
    assert len([r for r in new["results"] if r["strategy"] == "auto"]) == 1
    assert report["results"][-1]["auto"]["chosen"] == "sptt/linear/c=16/decoder/fp32"  # the input is untouched


def test_an_untimed_choice_needs_a_rerun():
    rows = [_row("flat", "flat", samples=(5.0, 5.0))]  # at 200 Mbit/s a Tower Module wins: not timed here
    sweep = {"sweep": [{"point": {"batch": 1024}, "config": CONFIG, "results": rows}]}
    new = rechoose_report(sweep)
    (what,) = new["rechosen"]["points"]
    assert what["after"] != "flat/fp32" and what["needs_rerun"] and new["needs_rerun"] == [{"batch": 1024}]
    assert not any(r["strategy"] == "auto" for r in new["sweep"][0]["results"])
