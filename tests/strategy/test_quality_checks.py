"""The quality checks `--calibration-data` injects: the harness's data sets, and a file of the user's batches."""
from __future__ import annotations

import io
import json
import math

import torch

from dmt_compile.strategy import Candidate, QualityCheck
from dmt_compile.tools.cli import main
from benchmarks.quality.auto_check import HarnessQualityCheck
from helpers import load_model


def test_harness_check_measures_paired_deltas_on_synthetic_data():
    check = HarnessQualityCheck(data_sets=("synthetic",), seeds=2, samples=3000, epochs=2, pretrain_epochs=1)
    assert isinstance(check, QualityCheck)
    cands = [Candidate("sptt", "dot", 4.0, "hierarchical"), Candidate("sptt", "linear", 4.0, "direct")]
    assert "training steps" in check.cost(cands)
    seen = []
    out = check.measure(cands, lambda done, total, what: seen.append((done, total)))
    assert seen[-1] == (4, 4)  # 2 seeds x 2 candidates, reported as they finish
    for c in cands:  # linear/direct does not apply to the harness DLRM: it falls back to feed=auto
        q = out[c.key]
        assert q.seeds == 2 and q.data == "synthetic"
        assert math.isfinite(q.delta_auc) and q.auc_spread >= 0 and math.isfinite(q.delta_log_loss)
        assert abs(q.delta_auc) < 0.5


def test_cli_calibration_data_file_measures_the_shortlist(tmp_path, capsys):
    from polymorphic_models import fm_factory

    batches = []
    for i in range(5):
        _, inputs = fm_factory(batch_size=32, seed=i + 1)
        batches.append((inputs, (torch.rand(32, generator=torch.Generator().manual_seed(i)) > 0.5).float()))
    path = tmp_path / "batches.pt"
    torch.save(batches, path)
    out = io.StringIO()
    rc = main(["plan", "tests/polymorphic_models.py:fm_factory", "--topology", "dgx1:16", "--strategy", "auto",
               "--batch", "8192", "--calibration-data", str(path), "--format", "json"], stdout=out)
    assert rc == 0
    doc = json.loads(out.getvalue())["auto"]
    assert doc["quality_checked"] and doc["quality"] == "measured on calibration data"
    measured = [r for r in doc["candidates"] if r["delta_auc"] is not None]
    assert len(measured) == 3 and all(r["quality_seeds"] == 3 for r in measured)  # the shortlist
    assert all((r["delta_auc"] - r["auc_spread"] < -doc["quality_budget"]) == (r["dropped"] is not None)
               for r in measured)
    err = capsys.readouterr().err
    assert "paired training on calibration data" in err  # the cost of the check, logged first
    assert "quality check:" not in err  # the progress bar is drawn on a terminal only (tests/test_progress.py)
