"""The doc's evidence tables are printed from the raw JSON (benchmarks/emulated/evidence_tables.py)."""
from benchmarks.emulated.evidence_tables import main, model_text, rows_markdown, sweep_markdown


def _tm_row():
    return {"run": "sptt_tm@4", "strategy": "sptt_tm", "step_time_s": {"median": 0.25, "ci95": [0.24, 0.26]},
            "speedup_vs_flat": {"median": 1.7, "ci95": [1.6, 1.8]}, "speedup_vs_best_baseline": {"median": 1.2,
            "ci95": [1.1, 1.3]}, "bound": 2.0, "efficiency": 0.85, "overlap_ratio": 1.07,
            "measured_exchange_share": 0.62, "delta_auc": {"synthetic": {"median": -0.001, "min": -0.002, "max": 0.0},
                                                           "adult": {"median": 0.0005, "min": 0.0, "max": 0.001}},
            "descriptor": {"tower_module": "dot", "compression_label": "c=4.33 (requested 4)", "feed": ["hierarchical"],
                           "interaction": {"vectors": [27, 7]}, "dense_parameters": 24719,
                           "tower_module_parameters": 9102, "decoder_parameters": 0}}


def test_a_row_states_the_model_timed_its_cis_bound_and_quality():
    row = _tm_row()
    assert model_text(row) == "dot c=4.33 (requested 4), hierarchical; 27→7 vectors; 24,719 + 9,102 TM/decoder params"
    flat = {"run": "flat", "strategy": "flat", "step_time_s": {"median": 0.43, "ci95": [0.42, 0.44]}, "exact": True,
            "descriptor": {"dense_parameters": 36737}}
    text = rows_markdown({"results": [flat, row], "flat_measured_exchange_share": 0.74, "wire_share_target": 0.8,
                          "config": {"inter_bw_bits": 4.4e8}, "load_before": [0.5], "load_after": [4.9],
                          "best_baseline": "flat+bf16", "best_baseline_basis": "equal quality"})
    assert "| sptt_tm@4 | dot c=4.33" in text and "| 250 [240, 260] | 1.70 [1.60, 1.80] | 1.20 [1.10, 1.30] |" in text
    assert "| 2.00× | 0.85 | 1.07 | 0.62 | -0.0010 [-0.0020, +0.0000] | +0.0005 [+0.0000, +0.0010] |" in text
    assert "| flat | flat's model (36,737 dense params) | 430 [420, 440] |" in text and "0 (exact)" in text
    assert "flat's measured exchange share 0.740 (target 0.8), NIC 440 Mbit/s" in text and "flat+bf16" in text


def test_sweep_table_lists_points_and_the_ones_that_could_not_run(tmp_path, capsys):
    import json

    report = {"sweep": [{"point": {"wire_share": 0.5}, "flat_measured_exchange_share": 0.52, "cpu_bound": True,
                         "results": [_tm_row()]}],
              "unreachable": [{"point": {"wire_share": 0.1}, "reason": "cannot reach 0.1\n  fix: ..."}]}
    text = sweep_markdown(report)
    assert "| wire_share 0.5 | 0.52 | yes | 1.70 [1.60, 1.80] |" in text
    assert "not run: {'wire_share': 0.1}: cannot reach 0.1" in text
    path = tmp_path / "s.json"
    path.write_text(json.dumps(report))
    assert main([str(path)]) == 0 and "wire_share 0.5" in capsys.readouterr().out
