"""launch_local / init_from_env: failures are reported fast and typed, nothing hangs, nothing is left behind."""
from __future__ import annotations

import logging
import multiprocessing
import os
import time

import pytest
import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError, RuntimeSetupError
from dmt_compile.runtime import HierarchicalGroups, all_to_all_rows, init_from_env, launch_local, validate_world
from dmt_compile.topo.topology import Topology

pytestmark = pytest.mark.distributed
log = logging.getLogger(__name__)


def worker_fault(rank: int, victim: int, stamp: str) -> None:
    groups = HierarchicalGroups.build("2x2")
    x = torch.ones(8, 4)
    for step in range(1000):
        if rank == victim and step == 3:
            time.sleep(0.5)  # the other ranks are blocked inside the collective by now
            with open(stamp, "w") as f:
                f.write(repr(time.time()))
            os._exit(1)
        all_to_all_rows(x, [2] * 4, [2] * 4, None, "world")
        all_to_all_rows(x[:4], [2, 2], [2, 2], groups.peer, "cross")


def worker_raise(rank: int) -> None:
    if rank == 1:
        raise ValueError(f"boom {os.environ['DMT_TEST_FLAG']} {os.environ['LOCAL_WORLD_SIZE']}")
    dist.barrier()  # rank 0 waits for a peer that is gone


def worker_stuck(rank: int) -> None:
    groups = HierarchicalGroups.build("1x2")
    if rank == 1:
        time.sleep(300)  # alive but never joins the collective
    all_to_all_rows(torch.ones(2, 3), [1, 1], [1, 1], groups.intra, "intra")


def worker_sleepy(rank: int) -> None:
    time.sleep(300)


def _no_children_left() -> None:
    assert multiprocessing.active_children() == []


def test_rank_dies_mid_step_others_raise_fast(tmp_path):
    stamp = tmp_path / "death"
    start = time.time()
    with pytest.raises(CollectiveError) as info:
        launch_local(worker_fault, "2x2", args=(1, str(stamp)), timeout_s=100)
    elapsed = time.time() - start
    err = info.value
    failures = err.failures
    assert failures[1].kind == "exited" and failures[1].exitcode == 1
    survivors = [0, 2, 3]
    for r in survivors:
        f = failures[r]
        assert f.kind == "raised" and f.exc_type == "CollectiveError", f.describe()
        assert "failed" in f.message and "world" in f.message, f.message
        assert f.traceback and "Traceback" in f.traceback
    death = float(stamp.read_text())
    lags = [failures[r].at - death for r in survivors]
    log.info("fault test: launch_local raised after %.2f s; survivors raised %s s after rank 1 died", elapsed,
             [round(x, 3) for x in lags])
    assert all(0 <= lag < 60 for lag in lags)
    assert elapsed < 60  # well within timeout_s=100: no hang
    assert "rank 1 failed first" in str(err) and not err.timed_out
    _no_children_left()


def test_rank_raises_traceback_and_env_reach_parent():
    with pytest.raises(CollectiveError) as info:
        launch_local(worker_raise, "1x2", timeout_s=40, env={"DMT_TEST_FLAG": "xyzzy"})
    text = str(info.value)
    assert "rank 1 failed first" in text
    assert "ValueError" in text and "boom xyzzy 2" in text and "Traceback" in text
    assert info.value.failures[0].kind == "raised"  # the barrier saw the closed connection
    _no_children_left()


def test_stuck_peer_cut_short_by_group_timeout():
    start = time.time()
    with pytest.raises(CollectiveError) as info:
        launch_local(worker_stuck, "1x2", timeout_s=40, pg_timeout_s=3, failure_grace_s=1)
    failures = info.value.failures
    assert failures[0].kind == "raised" and "intra" in failures[0].message
    assert failures[1].kind == "killed" and "worker_stuck" in (failures[1].traceback or "")
    assert info.value.culprits == [1] and "rank 1 hung" in str(info.value).splitlines()[0]
    assert time.time() - start < 60  # spawning + importing torch alone can take 20 s on a loaded box
    _no_children_left()


def test_overall_timeout_kills_everything():
    # 40 s: on a loaded 2-core box spawning a rank and importing torch alone can take 20 s, and the
    # stacks quoted below exist only once a rank runs its own code
    start = time.time()
    with pytest.raises(CollectiveError) as info:
        launch_local(worker_sleepy, "1x2", timeout_s=40)
    elapsed = time.time() - start
    assert info.value.timed_out and "timed out after 40 s" in str(info.value)
    assert sorted(info.value.failures) == [0, 1]
    assert all(f.kind == "killed" for f in info.value.failures.values())
    assert "worker_sleepy" in str(info.value)  # the stacks of the hung ranks are quoted
    assert elapsed < 60
    _no_children_left()


# ----------------------------------------------------------------- no processes needed


def test_validate_world_reports_the_difference():
    assert validate_world("2x2", 4, 2) == Topology(2, 2)
    with pytest.raises(RuntimeSetupError, match=r"world size is 6 .* topology 2x2 needs 2 hosts x 2 ranks = 4 ranks"):
        validate_world("2x2", 6, 3)
    with pytest.raises(RuntimeSetupError, match=r"LOCAL_WORLD_SIZE is 4 but topology 2x2 has 2 ranks per host") as info:
        validate_world("2x2", 4, 4)
    assert "--topology 1x4" in str(info.value)


def test_init_from_env_validates_before_init(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeSetupError, match="not started by torchrun"):
        init_from_env("2x2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    with pytest.raises(RuntimeSetupError, match=r"world size is 8 \(from WORLD_SIZE\).*LOCAL_WORLD_SIZE is 4"):
        init_from_env("2x2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(RuntimeSetupError, match="LOCAL_RANK=0"):
        init_from_env("2x2")
    assert not dist.is_initialized()
