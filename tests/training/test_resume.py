"""examples/train_distributed.py: a run interrupted after its step-3 checkpoint (one rank SIGKILLed)
and resumed ends bitwise equal to an uninterrupted run; progress is printed once."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from dmt_compile.training.checkpoint import read_checkpoint

pytestmark = pytest.mark.distributed
SCRIPT = os.path.join(ROOT, "examples", "train_distributed.py")


def _run(*extra: str, timeout: int = 500) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, SCRIPT, "--local", "--topology", "2x2", "--steps", "6", "--checkpoint-every", "3", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    whole = _run("--checkpoint-dir", str(d / "whole"))
    crashed = _run("--checkpoint-dir", str(d / "crash"), "--simulate-crash", "4:1")
    resumed = _run("--checkpoint-dir", str(d / "crash"), "--resume")
    return d, whole, crashed, resumed


def test_interrupted_and_resumed_run_is_bitwise_equal_to_an_uninterrupted_one(runs):
    d, whole, crashed, resumed = runs
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert crashed.returncode == 2
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(os.listdir(d / "crash")) == ["dmt_run.json", "latest", "step_000003", "step_000006"]
    assert "resumed from" in resumed.stdout and "step_000003 at step 3" in resumed.stdout
    _, a = read_checkpoint(str(d / "whole" / "step_000006"))
    _, b = read_checkpoint(str(d / "crash" / "step_000006"))
    keys = [k for k in a if k.startswith(("model/", "optim/"))]
    assert len(keys) > 100 and sorted(keys) == sorted(k for k in b if k.startswith(("model/", "optim/")))
    differ = [k for k in keys if not torch.equal(a[k], b[k])]
    assert not differ, differ
    assert a["extra"] == b["extra"] == {"step": 6, "data": {"epoch": 1, "position": 2}}
    # the uninterrupted run moved the parameters (the comparison is not between two untouched models)
    _, start = read_checkpoint(str(d / "whole" / "step_000003"))
    assert any(not torch.equal(start[k], a[k]) for k in keys if k.startswith("model/"))


def test_progress_is_printed_once_by_rank_0(runs):
    _, whole, crashed, resumed = runs
    lines = [line for line in whole.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == [f"{i}/6" for i in range(1, 7)]
    assert all("loss" in line and "samples/s" in line and "cross-host" in line for line in lines)
    assert whole.stdout.count("done: 6 steps") == 1
    steps = [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("step ")]
    assert steps == ["4/6", "5/6", "6/6"]


def test_a_killed_rank_is_reported_once(runs):
    _, _, crashed, _ = runs
    errors = [line for line in crashed.stderr.splitlines() if line.startswith("train_distributed: error")]
    assert len(errors) == 1 and "rank 1" in errors[0] and "signal 9" in errors[0]
    assert "Traceback" not in crashed.stderr


def test_setup_error_under_torchrun_is_reported_once(tmp_path):
    """2 processes for a 2x2 topology: every rank refuses; one line says why (rank 0's), not one per rank."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29731",
           SCRIPT, "--topology", "2x2", "--steps", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if line.startswith("train_distributed: error")]
    assert len(ours) == 1, done.stderr[-3000:]
    assert "world size is 2" in ours[0] and "needs 2 hosts x 2 ranks" in ours[0]

