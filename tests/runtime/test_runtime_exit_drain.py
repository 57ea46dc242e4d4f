"""The exit drain: the GIL is left free until the process's other threads are quiet (runtime/exit_drain.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from dmt_compile.runtime import exit_drain

linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc/self/task")


@linux_only
def test_an_idle_process_has_no_other_runnable_thread_and_drains_at_once():
    assert exit_drain.runnable_threads() == 0
    waited = exit_drain.drain()
    assert waited < 0.5, waited  # QUIET_CHECKS polls of POLL_S, not the cap


@linux_only
def test_a_busy_thread_is_runnable_and_the_drain_waits_for_it():
    stop = time.monotonic() + 0.4

    def spin():
        while time.monotonic() < stop:
            pass

    t = threading.Thread(target=spin)
    t.start()
    try:
        waited = exit_drain.drain(max_wait_s=3.0)
    finally:
        t.join()
    assert 0.3 <= waited < 3.0, waited  # waited for the spinner to end, not for the cap


@linux_only
def test_the_drain_gives_up_at_its_cap():
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    t = threading.Thread(target=spin)
    t.start()
    try:
        waited = exit_drain.drain(max_wait_s=0.2)
    finally:
        stop.set()
        t.join()
    assert 0.2 <= waited < 1.0, waited


def test_without_proc_it_sleeps_once(monkeypatch):
    monkeypatch.setattr(exit_drain, "runnable_threads", lambda: None)
    assert exit_drain.FALLBACK_S <= exit_drain.drain() < 1.0


def test_install_registers_one_handler(monkeypatch):
    calls = []
    monkeypatch.setattr(exit_drain, "_installed", False)
    monkeypatch.setattr(exit_drain.atexit, "register", calls.append)
    exit_drain.install()
    exit_drain.install()
    assert calls == [exit_drain._drain_at_exit]


@pytest.mark.distributed
def test_building_groups_installs_the_drain_and_the_process_exits_cleanly(tmp_path):
    """A one-rank gloo world whose groups stay referenced at exit (as in every training script)."""
    script = tmp_path / "one.py"
    script.write_text(textwrap.dedent("""
        import os, torch, torch.distributed as dist
        from dmt_compile.runtime import exit_drain
        from dmt_compile.runtime.groups import HierarchicalGroups
        dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"file://{os.environ['STORE']}")
        groups = HierarchicalGroups.build("1x1")
        x = torch.ones(3)
        dist.all_reduce(x, group=groups.world)
        dist.destroy_process_group()
        print("installed", exit_drain._installed, "sum", int(x.sum()))
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    env["STORE"] = str(tmp_path / "store")
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "installed True sum 3" in run.stdout, run.stdout + run.stderr
