"""torchrun environment mistakes: one typed line naming the variable and the fix, within 30 s, never a hang.

Each case sets the environment a (mis)configured torchrun would give one process and calls
`init_from_env`; nothing here needs more than that one process (the missing ranks are the point).
"""
from __future__ import annotations

import socket
import time

import pytest
import torch.distributed as dist

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime import init_from_env

TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
            "TORCHELASTIC_USE_AGENT_STORE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(monkeypatch):
    for name in TORCHRUN:
        monkeypatch.delenv(name, raising=False)

    def set_env(**values):
        for k, v in values.items():
            monkeypatch.setenv(k, str(v))
    set_env(RANK=0, WORLD_SIZE=4, LOCAL_RANK=0, LOCAL_WORLD_SIZE=2, MASTER_ADDR="127.0.0.1", MASTER_PORT=_free_port())
    yield set_env
    assert not dist.is_initialized()


def _refused(topology: str = "2x2", **kw) -> str:
    start = time.monotonic()
    with pytest.raises(RuntimeSetupError) as info:
        init_from_env(topology, "gloo", **kw)
    elapsed = time.monotonic() - start
    assert elapsed < 30, f"took {elapsed:.1f} s"
    text = str(info.value)
    assert len(info.value.problem.splitlines()) == 1 and "fix:" in text, text
    return text


@pytest.mark.parametrize("values,says", [
    (dict(RANK=4), "RANK=4 is not below WORLD_SIZE=4 (ranks are 0..3)"),
    (dict(RANK=7, WORLD_SIZE=2), "RANK=7 is not below WORLD_SIZE=2"),
    (dict(RANK=-1), "RANK=-1 must be >= 0"),
    (dict(WORLD_SIZE=0), "WORLD_SIZE=0 must be >= 1"),
    (dict(WORLD_SIZE="four"), "WORLD_SIZE='four' is not an integer"),
    (dict(WORLD_SIZE=8, LOCAL_WORLD_SIZE=4), "world size is 8 (from WORLD_SIZE) but topology 2x2 needs"),
    (dict(WORLD_SIZE=2, LOCAL_WORLD_SIZE=2), "world size is 2 (from WORLD_SIZE)"),
    (dict(LOCAL_RANK=-3), "LOCAL_RANK=-3 must be >= 0"),
    (dict(RANK=3, LOCAL_RANK=0), "RANK=3 has LOCAL_RANK=0"),
    (dict(MASTER_ADDR=""), "MASTER_ADDR is not set"),
    (dict(MASTER_PORT=""), "MASTER_PORT is not set"),
    (dict(MASTER_PORT="http"), "MASTER_PORT='http' is not a port number (1..65535)"),
    (dict(MASTER_PORT=70000), "MASTER_PORT='70000' is not a port number"),
    (dict(MASTER_PORT=0), "MASTER_PORT='0' is not a port number"),
    (dict(MASTER_ADDR="no-such-host.invalid"), "MASTER_ADDR='no-such-host.invalid' does not resolve"),
])
def test_bad_values_are_refused_before_anything_waits(env, values, says):
    env(**values)
    text = _refused()
    assert says in text, text


def test_missing_rank_and_world_name_torchrun(monkeypatch, env):
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert "RANK and WORLD_SIZE not set: this process was not started by torchrun" in _refused()


def test_port_in_use_names_master_port(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        env(MASTER_PORT=busy.getsockname()[1], WORLD_SIZE=1, LOCAL_WORLD_SIZE=1)
        text = _refused("1x1")
    assert "the port is already in use" in text and "MASTER_PORT=<another port>" in text, text


def test_ranks_that_never_join_are_counted(env):
    """Rank 0 of a 1x2 world starts alone: after the join timeout it says 1 of 2 joined (default: 20 s)."""
    env(WORLD_SIZE=2, LOCAL_WORLD_SIZE=2)
    text = _refused("1x2")
    assert "only 1 of WORLD_SIZE=2 ranks joined rank 0" in text and "within 20 s" in text, text


def test_rank_without_a_rank_0_says_so(env):
    env(RANK=1, LOCAL_RANK=1, WORLD_SIZE=2, LOCAL_WORLD_SIZE=2)
    text = _refused("1x2", join_timeout_s=3)
    assert "rank 1 could not reach rank 0 at MASTER_ADDR=127.0.0.1" in text, text


_RANK_SCRIPT = """
import torch, torch.distributed as dist
from dmt_compile.runtime import init_from_env
groups = init_from_env("1x2", "gloo")
x = torch.ones(1) * (groups.rank + 1)
dist.all_reduce(x)
import sys
sys.stdout.write(f"sum {int(x)}\\n")  # one write: two ranks share torchrun's stdout pipe
sys.stdout.flush()
dist.destroy_process_group()
"""


@pytest.mark.distributed
def test_a_correct_environment_still_starts(tmp_path):
    """Two processes with a right environment form the group through the store built here (no torchrun)."""
    import os
    import subprocess
    import sys

    port = _free_port()
    procs = []
    for rank in range(2):
        env = {k: v for k, v in os.environ.items() if k not in TORCHRUN}
        env.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=120)[0])
        finally:
            p.kill()
    assert all("sum 3" in o for o in outs), outs


@pytest.mark.distributed
def test_rank_stopped_inside_a_collective_is_named():
    """SIGSTOP on rank 2 while it waits in an exchange: named from /proc/<pid>/stat, not "no rank stands out"."""
    from dmt_compile.errors import CollectiveError
    from dmt_compile.runtime.launch import launch_local
    from rel_input_workers import stopped_inside_collective

    start = time.monotonic()
    with pytest.raises(CollectiveError) as info:
        launch_local(stopped_inside_collective, "2x2", args=(2,), timeout_s=240, pg_timeout_s=10, failure_grace_s=5)
    first = str(info.value).splitlines()[0]
    assert info.value.culprits == [2], first
    assert "rank 2 was stopped by SIGSTOP or Ctrl-Z (process state T in /proc)" in first, first
    assert "last heartbeat" in first and "no rank stands out" not in first, first
    assert "kill -CONT" in str(info.value)
    assert time.monotonic() - start < 120


@pytest.mark.parametrize("kw", [dict(timeout_s=0), dict(timeout_s=float("nan")), dict(timeout_s=float("inf")),
                                dict(join_timeout_s=-1), dict(join_timeout_s="20")])
def test_bad_timeouts_are_refused(env, kw):
    env(WORLD_SIZE=1, LOCAL_WORLD_SIZE=1)
    name = next(iter(kw))
    text = _refused("1x1", **kw)
    assert f"{name}=" in text and "is not a positive number of seconds" in text, text


@pytest.mark.distributed
def test_real_torchrun_with_its_agent_store_still_starts(tmp_path):
    """Under torchrun every rank is a client of the agent's store (TORCHELASTIC_USE_AGENT_STORE=True)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
                          f"--master-port={_free_port()}", str(script)], env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == 0 and run.stdout.count("sum 3") == 2, run.stdout + run.stderr
