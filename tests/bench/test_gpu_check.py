"""benchmarks/gpu_check.py: skips cleanly without CUDA; its checks run end to end on CPU (smoke)."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest
import torch

from conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", os.path.join(ROOT, "benchmarks", "gpu_check.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_skips_without_cuda(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the skip path is not taken")
    out = tmp_path / "g.json"
    assert _script().main(["--out", str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "no CUDA device" in report["skipped"]
    assert json.loads(out.read_text()) == report


def test_checks_run_on_cpu(capsys):
    assert _script().main(["--device", "cpu", "--batch", "64", "--reps", "1", "--trials", "2", "--markdown"]) == 0
    text = capsys.readouterr().out
    report = json.loads(text[: text.index("\nGPU:")])
    o = report["overhead"]
    assert o["forward"]["ratio"] > 0 and o["forward_backward"]["eager_ms"] > 0
    assert report["tower_module"]["rows"] == 8 * 64 and report["tower_module"]["out"] == 13 * 64 // 4
    i = report["interaction"]
    assert i["flat_or_decoder"]["vectors"] == 27 and i["hierarchical"]["vectors"] == 2 * 4 + 1
    assert "skipped" in report["nccl"] or "returncode" in report["nccl"]
    assert "| overhead forward, batch 64 |" in text and "hierarchical feed" in text
