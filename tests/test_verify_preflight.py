"""`verify` transforms in the parent first: a model that cannot be transformed or a device that is not
there is refused in two lines within seconds, before any rank starts; progress lines go to stderr."""
from __future__ import annotations

import io
import os
import time

import pytest
import torch

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime.devices import check_device, rank_device
from dmt_compile.tools.cli import main

NO_EMBEDDINGS = """
import torch
def factory():
    return torch.nn.Sequential(torch.nn.Linear(4, 1)), (torch.randn(8, 4),)
"""


def _cli(argv, capsys):
    out = io.StringIO()
    t0 = time.monotonic()
    code = main(argv, stdout=out)
    return code, out.getvalue(), capsys.readouterr().err, time.monotonic() - t0


def test_untransformable_model_is_refused_in_the_parent_in_two_lines(tmp_path, capsys):
    path = tmp_path / "noemb.py"
    path.write_text(NO_EMBEDDINGS)
    code, out, err, seconds = _cli(["verify", f"{path}:factory", "--topology", "1x2"], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "DetectionError" in lines[0] and lines[1].lstrip().startswith("fix:")
    assert "starting" not in err and "rank" not in err  # no process was started
    assert seconds < 30


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal path cannot run")
def test_absent_cuda_is_a_typed_error_before_any_rank(capsys):
    code, out, err, seconds = _cli(["verify", "examples/dlrm.py:factory", "--device", "cuda"], capsys)
    assert code == 2 and "RuntimeSetupError: device 'cuda' was asked for, but CUDA is not available" in err
    assert "--device cpu" in err and "Traceback" not in err and len(err.strip().splitlines()) == 2
    with pytest.raises(RuntimeSetupError, match="CUDA is not available"):
        rank_device("nccl")


def test_device_checks():
    check_device("cpu", 8)
    assert rank_device("gloo") == torch.device("cpu")
    with pytest.raises(RuntimeSetupError, match="unknown device 'tpu'"):
        check_device("tpu")
    if torch.cuda.is_available():
        with pytest.raises(RuntimeSetupError, match="GPUs? are visible|are visible"):
            check_device("cuda", torch.cuda.device_count() + 1)


@pytest.mark.distributed
def test_progress_lines_per_phase_on_stderr(capfd):
    """The ranks write their lines to the inherited stderr (file descriptor 2), hence capfd."""
    code, out, err, _ = _cli(["verify", "examples/dlrm.py:factory", "--topology", "1x2", "--timeout", "300"], capfd)
    assert code == 0 and "OK: largest difference" in out and "verify:" not in out
    phases = ["transformed in this process; starting 2 ranks", "process groups of 1x2 ready",
              "models transformed", "replicated parameters broadcast", "training step run", "every rank finished"]
    positions = [err.find(p) for p in phases]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_verify_on_two_gpus_nccl(capsys):
    code, out, err, _ = _cli(["verify", "examples/dlrm.py:factory", "--topology", "1x2", "--device", "cuda"], capsys)
    assert code == 0 and "OK: largest difference" in out, out + err
