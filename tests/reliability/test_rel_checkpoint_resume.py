"""The trainer's checkpoint flags: refused mistakes (in seconds, before any rank starts), runs kept
apart, damage named with a fallback to the newest intact step, steps ordered by number."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from dmt_compile.errors import CheckpointError
from dmt_compile.training import checkpoint_run as runs

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "examples", "train_distributed.py")
pytestmark = pytest.mark.distributed


def _train(*extra: str, timeout: int = 500) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, SCRIPT, "--local", "--topology", "1x2", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _error(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert done.returncode == 2 and lines, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> str:
    """A run of 4 steps with a checkpoint after each."""
    root = str(tmp_path_factory.mktemp("runs") / "run")
    done = _train("--steps", "4", "--checkpoint-every", "1", "--checkpoint-dir", root)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def _copy(run_root: str, tmp_path) -> str:
    dst = str(tmp_path / "copy")
    shutil.copytree(run_root, dst)
    return dst


def test_the_run_root_records_its_run(run_root):
    assert sorted(os.listdir(run_root)) == ["dmt_run.json", "latest", "step_000001", "step_000002", "step_000003",
                                            "step_000004"]
    run_id = json.load(open(os.path.join(run_root, "dmt_run.json")))["run_id"]
    from dmt_compile.training.checkpoint_files import read_manifest

    assert {read_manifest(os.path.join(run_root, f"step_00000{i}"))["run_id"] for i in range(1, 5)} == {run_id}


def test_checkpoint_command_follows_latest(run_root):
    """`dmt-compile checkpoint DIR` on the trainer's directory reads its latest step, saying so."""
    import io

    from dmt_compile.tools.cli import main

    text = io.StringIO()
    assert main(["checkpoint", run_root], stdout=text) == 0
    out = text.getvalue()
    assert "is a run's checkpoint root; its latest is step_000004" in out
    assert "(step 4)" in out and "every checksum verified" in out and "'step': 4" in out


def test_flag_mistakes_are_refused_before_any_rank_starts(run_root, tmp_path):
    cases = {
        ("--resume", "--checkpoint-dir", str(tmp_path / "mistyped")): "does not exist, so there is nothing to resume",
        ("--checkpoint-every", "2"): "--checkpoint-every needs --checkpoint-dir",
        ("--checkpoint-dir", run_root): "holds the checkpoints of another run (4 step(s), up to step_000004)",
        ("--resume", "--checkpoint-dir", str(tmp_path)): "is not a dmt_compile run's checkpoint directory",
        ("--resume", "--overwrite", "--checkpoint-dir", run_root): "pass one of them",
    }
    (tmp_path / "notes.txt").write_text("mine")
    cases[("--checkpoint-dir", str(tmp_path))] = "is not empty and is not a dmt_compile run's checkpoint directory"
    for argv, want in cases.items():
        done = _train("--steps", "1", *argv, timeout=120)
        assert want in _error(done), (argv, done.stderr[-1500:])
        assert "launch_local" not in done.stderr and "rank" not in _error(done)  # the launcher refused it


def test_a_live_second_writer_is_refused(run_root, tmp_path):
    root = _copy(run_root, tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        import socket
        with open(os.path.join(root, runs.LOCK), "w") as fh:
            json.dump({"pid": sleeper.pid, "host": socket.gethostname()}, fh)
        done = _train("--steps", "5", "--resume", "--checkpoint-dir", root, timeout=120)
        assert f"being written by another process (pid {sleeper.pid}" in _error(done)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_damaged_latest_falls_back_to_the_newest_intact_step(run_root, tmp_path):
    """step_000004 (latest) loses a shard, step_000003 has a flipped bit: resume names both and
    continues from step_000002; a stale lock of a dead process is taken over, saying so."""
    root = _copy(run_root, tmp_path)
    shards = lambda step: sorted(os.path.join(root, step, n) for n in os.listdir(os.path.join(root, step))  # noqa
                                 if n.endswith(".distcp"))
    os.unlink(shards("step_000004")[0])
    with open(shards("step_000003")[-1], "r+b") as fh:
        fh.seek(50)
        byte = fh.read(1)
        fh.seek(50)
        fh.write(bytes([byte[0] ^ 0x10]))
    with open(os.path.join(root, runs.LOCK), "w") as fh:
        json.dump({"pid": 2 ** 22 + 12345, "host": __import__("socket").gethostname()}, fh)
    done = _train("--steps", "5", "--checkpoint-every", "1", "--resume", "--checkpoint-dir", root)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "took over the stale lock" in out
    assert "step_000004 is damaged: __0_0.distcp is missing; falling back to step_000003" in out
    assert "step_000003 is damaged: __1_0.distcp does not match its SHA-256 (damaged); falling back to step_000002" in out
    assert "step_000002 at step 2" in out
    assert "unavailable or uninitialized" not in done.stderr and "deprecating ShardedTensor" not in done.stderr
    assert open(os.path.join(root, "latest")).read().strip() == "step_000005"
    assert not os.path.exists(os.path.join(root, runs.LOCK))


def test_steps_are_ordered_by_number_and_uncommitted_ones_named(run_root, tmp_path):
    """Without `latest`, step_1000000 is newer than step_999999; a step newer than `latest` was never
    committed and is not used."""
    root = _copy(run_root, tmp_path)
    os.rename(os.path.join(root, "step_000003"), os.path.join(root, "step_999999"))
    os.rename(os.path.join(root, "step_000004"), os.path.join(root, "step_1000000"))
    os.unlink(os.path.join(root, "latest"))
    assert [n for _, n in runs.step_dirs(root)][-2:] == ["step_999999", "step_1000000"]
    with open(os.path.join(root, "latest"), "w") as fh:  # a crash between the step's rename and the pointer's
        fh.write("step_000002\n")
    done = _train("--steps", "3", "--resume", "--checkpoint-dir", root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step_1000000, step_999999 are newer than latest but never committed" in done.stdout
    assert "step_000002 at step 2" in done.stdout
    os.unlink(os.path.join(root, "latest"))
    os.unlink(os.path.join(root, "step_000003", "dmt_checkpoint.json"))  # the new step 3: not ours any more
    done = _train("--steps", "5", "--resume", "--checkpoint-dir", root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "latest is missing" in done.stdout and "step_1000000 at step 4" in done.stdout


def test_resume_with_another_optimizer_is_refused(run_root, tmp_path):
    done = _train("--steps", "5", "--resume", "--optimizer", "sgd", "--checkpoint-dir", _copy(run_root, tmp_path))
    assert "holds Adam state, but this run's optimizer is SGD" in _error(done)


def test_overwrite_starts_a_new_run_and_keeps_foreign_files(run_root, tmp_path):
    """Rank 0's part of opening a root, in this process: --overwrite replaces our run's checkpoints
    (deleted, ours by their marker) and leaves every other file alone."""
    root = _copy(run_root, tmp_path)
    with open(os.path.join(root, "notes.txt"), "w") as fh:
        fh.write("mine")
    os.makedirs(os.path.join(root, "step_000009"))  # a foreign directory with a step's name
    old = json.load(open(os.path.join(root, "dmt_run.json")))["run_id"]
    with pytest.raises(CheckpointError, match="holds the checkpoints of another run"):
        runs._open_root(root, resume=False, overwrite=False)
    run_id, notes = runs._open_root(root, resume=False, overwrite=True)
    assert run_id != old and "deleted 4 checkpoint(s)" in notes[0]
    assert sorted(os.listdir(root)) == ["dmt_run.json", runs.LOCK, "notes.txt", "step_000009"]
    from dmt_compile.training.checkpoint_files import release_lock

    release_lock(os.path.join(root, runs.LOCK))
