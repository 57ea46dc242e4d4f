"""launch_local faults: orphans, hangs (culprit first), identical failures once, arguments a rank cannot use."""
from __future__ import annotations

import glob
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from dmt_compile.errors import CollectiveError, RuntimeSetupError
from dmt_compile.runtime import launch_local
from rel_workers import identity, same_error_everywhere, stuck_rank

pytestmark = pytest.mark.distributed
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
        return "Z" not in state.split()[1]
    except (FileNotFoundError, StopIteration):
        return False


def _wait_for(predicate, limit_s: float, poll_s: float = 0.2) -> bool:
    end = time.time() + limit_s
    while time.time() < end:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def _start_launcher(tmp_path, wrapper: list[str] | None = None):
    pid_dir, tmp = tmp_path / "pids", tmp_path / "tmp"
    pid_dir.mkdir()
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=os.pathsep.join([ROOT, HERE]))
    cmd = (wrapper or []) + [sys.executable, os.path.join(HERE, "rel_workers.py"), str(pid_dir)]
    # SIGINT at its default: a suite started in the background of a non-interactive shell inherits it
    # ignored (POSIX), and Python then leaves it ignored in every child, so the launcher never saw it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    files = [pid_dir / f"rank{r}.pid" for r in range(2)]
    assert _wait_for(lambda: all(f.exists() for f in files) or proc.poll() is not None, 240), "ranks did not start"
    assert proc.poll() is None, proc.stderr.read().decode()
    assert glob.glob(str(tmp / "dmt_launch_*")), "the run's folder exists while it runs"
    return proc, [int(f.read_text()) for f in files], tmp


def _assert_nothing_left(proc, pids: list[int], tmp) -> None:
    proc.wait(60)
    assert _wait_for(lambda: not any(_alive(p) for p in pids), 30), \
        f"ranks {[p for p in pids if _alive(p)]} outlived their launcher"
    assert _wait_for(lambda: not glob.glob(str(tmp / "dmt_launch_*")), 30), \
        f"temporary folder left behind: {glob.glob(str(tmp / 'dmt_launch_*'))}"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_ranks_and_folder_die_with_a_killed_launcher(tmp_path, sig):
    proc, pids, tmp = _start_launcher(tmp_path)
    os.kill(proc.pid, sig)
    _assert_nothing_left(proc, pids, tmp)
    if sig == signal.SIGTERM:  # the launcher cleaned up, then died of the signal as it would have
        assert proc.returncode == -signal.SIGTERM


def test_timeout_wrapper_leaves_nothing(tmp_path):
    """`timeout N python launcher.py`: the launcher and its process group get SIGTERM."""
    proc, pids, tmp = _start_launcher(tmp_path, ["timeout", "-s", "TERM", "600"])
    os.killpg(proc.pid, signal.SIGTERM)  # what timeout does when its time is up
    _assert_nothing_left(proc, pids, tmp)


def test_hung_rank_is_named_first():
    """Rank 2 stays alive outside any collective; ranks 0, 1, 3 time out waiting for it."""
    start = time.time()
    with pytest.raises(CollectiveError) as info:
        launch_local(stuck_rank, "2x2", args=(2,), timeout_s=300, pg_timeout_s=5, failure_grace_s=2)
    elapsed = time.time() - start
    err = info.value
    first = str(err).splitlines()[0]
    assert err.culprits == [2], str(err)
    assert "rank 2 hung" in first and "outside any collective" in first, first
    assert "ranks [0, 1, 3]" in first and "waiting for it" in first, first
    assert "(in stuck_rank at rel_workers.py:" in first, first  # where it hung
    # the culprit's stack comes first, before any victim's traceback
    body = str(err).split("\n", 1)[1]
    assert body.startswith("rank 2 was outside any collective"), body[:300]
    assert body.index("stuck_rank") < body.index("CollectiveError")
    assert err.failures[2].kind == "killed" and err.failures[2].in_collective is False
    assert all(err.failures[r].is_consequence for r in (0, 1, 3))
    assert elapsed < 150  # reported at pg_timeout + grace, far from the 300 s overall timeout


def test_identical_failures_are_reported_once():
    with pytest.raises(CollectiveError) as info:
        launch_local(same_error_everywhere, "1x2", timeout_s=120)
    text = str(info.value)
    assert text.splitlines()[0].startswith("launch_local(1x2) failed: ranks [0, 1] failed with the same error")
    assert "ranks [0, 1] raised the same ValueError" in text
    assert text.count("Traceback") == 1  # one traceback for both ranks
    assert text.count("| ValueError: the factory failed") == 1  # the traceback's last line, quoted once
    assert sorted(info.value.failures) == [0, 1]


def _nested():
    def inner(rank):
        return rank
    return inner


@pytest.mark.parametrize("fn, words", [
    (lambda rank: rank, "<lambda>"),
    (_nested(), "_nested.<locals>.inner"),
    ("not a function", "must be a function"),
])
def test_unimportable_function_is_refused_before_start(fn, words, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with pytest.raises(RuntimeSetupError) as info:
        launch_local(fn, "1x2", timeout_s=30)
    assert words in str(info.value)
    if callable(fn):
        assert "the function must be importable" in str(info.value)
    assert not os.listdir(tmp_path), "nothing was started"


def test_unpicklable_argument_is_refused():
    with pytest.raises(RuntimeSetupError, match="arguments of 'identity' cannot be sent"):
        launch_local(identity, "1x2", args=(lambda: 1,), timeout_s=60)


@pytest.mark.parametrize("name, value", [("timeout_s", 0), ("timeout_s", -5), ("timeout_s", math.nan),
                                         ("pg_timeout_s", 0), ("pg_timeout_s", math.inf),
                                         ("failure_grace_s", -1), ("timeout_s", "60")])
def test_bad_timeouts_are_refused(name, value):
    with pytest.raises(RuntimeSetupError) as info:
        launch_local(identity, "1x2", args=(1,), **{name: value})
    assert f"{name} must be" in str(info.value) and repr(value) in str(info.value)
