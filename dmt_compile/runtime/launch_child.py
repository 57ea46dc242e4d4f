"""The rank side of :func:`~dmt_compile.runtime.launch.launch_local`: one spawned process per rank.

Each rank

* dies with its launcher: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux (the kernel kills the rank
  the moment the launching thread dies, whatever the rank is doing), and a watchdog thread that
  polls the parent pid (every platform; also covers the race before ``prctl``);
* records a heartbeat ``rank{r}.beat``: whether its main thread is inside a collective, and since
  when. A rank that is alive but has stayed *outside* every collective while its peers time out
  inside one is the culprit of a hang (see ``launch_report``);
* dumps its Python stacks on SIGUSR1 (the launcher asks before it kills a stuck rank);
* writes its result or its exception to ``rank{r}.pkl`` and exits without gloo's teardown.
"""
from __future__ import annotations

import datetime
import faulthandler
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist

from dmt_compile.errors import CollectiveError

__all__ = ["child_main", "write_atomic", "COLLECTIVE_PATHS", "frame_in_collective"]

#: Source paths whose frames mean "this thread waits inside a collective".
COLLECTIVE_PATHS = (f"torch{os.sep}distributed{os.sep}", f"dmt_compile{os.sep}runtime{os.sep}collectives.py")
_BEAT_S = 1.0  # watchdog period: heartbeat sample and fallback parent check (PR_SET_PDEATHSIG is instant);
# slow on purpose: each wake-up takes the GIL from the rank, which stalls it on an overloaded box
_PR_SET_PDEATHSIG = 1


def write_atomic(path: str, payload: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(payload, f)
    os.replace(tmp, path)


def frame_in_collective(frame: Any) -> bool:
    """True when a frame of this stack runs torch.distributed or the runtime's collectives."""
    while frame is not None:
        name = frame.f_code.co_filename
        if any(p in name for p in COLLECTIVE_PATHS):
            return True
        frame = frame.f_back
    return False


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog still polls
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class _Watchdog(threading.Thread):
    """Daemon thread: exit when the launcher is gone; write the heartbeat on every state change."""

    def __init__(self, parent_pid: int, beat_path: str):
        super().__init__(name="dmt-launch-watchdog", daemon=True)
        self.parent_pid, self.beat_path = parent_pid, beat_path
        self.main_id = threading.main_thread().ident
        self.state: bool | None = None

    def run(self) -> None:
        touched = 0.0
        while True:
            if os.getppid() != self.parent_pid:
                os._exit(1)  # the launcher died (PR_SET_PDEATHSIG does this first on Linux)
            frame = sys._current_frames().get(self.main_id)  # noqa: SLF001 - sampling the main thread
            inside = frame_in_collective(frame)
            del frame
            now = time.time()
            try:
                if inside != self.state:
                    self.state = inside
                    write_atomic(self.beat_path, {"in_collective": inside, "since": now})
                    touched = now
                elif now - touched >= 1.0:  # the file's mtime is the last heartbeat (a stopped rank has none)
                    os.utime(self.beat_path)
                    touched = now
            except OSError:
                pass
            time.sleep(_BEAT_S)


def _set_rank_env(rank: int, num_hosts: int, local_size: int, env: Mapping[str, str] | None) -> None:
    """torchrun's variables for `rank`, then the caller's extra environment."""
    os.environ.update({
        "RANK": str(rank),
        "WORLD_SIZE": str(num_hosts * local_size),
        "LOCAL_RANK": str(rank % local_size),
        "LOCAL_WORLD_SIZE": str(local_size),
        "GROUP_RANK": str(rank // local_size),
    })
    if env:
        os.environ.update({str(k): str(v) for k, v in env.items()})


def child_main(
    rank: int,
    topo: tuple[int, int],
    fn: Callable[..., Any],
    args: tuple,
    init_file: str,
    out_dir: str,
    backend: str,
    env: Mapping[str, str] | None,
    pg_timeout_s: float,
    child_setup: Callable[[int], None] | None = None,
    parent_pid: int | None = None,
) -> None:
    """Run ``fn(rank, *args)`` as one rank; see the module docstring."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
        _Watchdog(parent_pid, os.path.join(out_dir, f"rank{rank}.beat")).start()
    num_hosts, local_size = topo
    _set_rank_env(rank, num_hosts, local_size, env)
    stack_file = open(os.path.join(out_dir, f"rank{rank}.stack"), "w")
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True)
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)  # N*L processes share the box
    result_path = os.path.join(out_dir, f"rank{rank}.pkl")
    try:
        if child_setup is not None:
            child_setup(rank)
        if backend == "nccl":
            torch.cuda.set_device(rank % local_size)
        dist.init_process_group(
            backend,
            init_method=f"file://{init_file}",
            rank=rank,
            world_size=num_hosts * local_size,
            timeout=datetime.timedelta(seconds=pg_timeout_s),
        )
        result = fn(rank, *args)
        try:
            dist.barrier()  # nobody tears down while a peer still talks to it
        except RuntimeError as exc:
            raise CollectiveError(
                f"rank {rank} finished but the closing barrier failed: {exc}",
                "another rank failed or exited early; see its error",
            ) from exc
        dist.destroy_process_group()
        write_atomic(result_path, ("ok", result, time.time()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        try:
            write_atomic(result_path, ("error", type(exc).__name__, str(exc), traceback.format_exc(), time.time()))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)  # skip gloo teardown and atexit, which can block on dead peers
