"""Starting a DMT run: N x L local processes (:func:`launch_local`) or under torchrun (:func:`init_from_env`).

:func:`launch_local` never hangs and never leaves a process or a file behind:

* a rank that raises, exits or outlives the overall ``timeout_s`` makes it kill every rank and raise
  :class:`~dmt_compile.errors.CollectiveError` whose first line names the culprit: the rank that
  failed first, or the rank that hung (alive, outside any collective) while the others timed out
  waiting for it (``launch_report``); tracebacks follow, culprits first, identical ones once;
* ranks die with their launcher, however it dies: ``PR_SET_PDEATHSIG`` (Linux) and a watchdog
  thread in every rank (``launch_child``); a SIGTERM to the launcher stops the ranks and removes
  the run's temporary folder before the launcher dies of it; a small janitor process removes the
  folder when the launcher is killed outright (SIGKILL);
* bad arguments (a lambda or nested function, which the rank processes cannot import; timeouts
  that are not positive) are refused before any process starts.

Process-group timeout: ``pg_timeout_s`` (default 30 s) bounds how long a rank waits in a
collective for a peer that is alive but stuck; a peer that *died* is detected by gloo as soon as
its sockets close (about a second), long before that. A stuck rank is therefore reported within
``pg_timeout_s + failure_grace_s`` (40 s by default).
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.runtime.groups import HierarchicalGroups
from dmt_compile.runtime.launch_child import child_main
from dmt_compile.runtime.launch_env import read_torchrun_env, rendezvous
from dmt_compile.runtime.launch_guard import RunFolder, SigtermGuard, Signalled, check_launch_args
from dmt_compile.runtime.launch_report import RankFailure, failure_error, innermost_own_frame, main_thread_stack
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["launch_local", "init_from_env", "RankFailure", "DEFAULT_PG_TIMEOUT_S"]

logger = logging.getLogger(__name__)

#: Default process-group timeout (seconds): well under the 60 s in which a hang must be reported.
DEFAULT_PG_TIMEOUT_S = 30.0
_POLL_S = 0.05


# --------------------------------------------------------------------------- parent side


def _read_result(path: str) -> tuple | None:
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001
        return ("error", type(exc).__name__, f"could not read the rank's result: {exc}", None, time.time())


def _await_stacks(out_dir: str, ranks: list[int], timeout_s: float) -> None:
    """Wait (bounded) until every rank's faulthandler stack dump has been written; busy boxes are slow."""
    deadline = time.time() + timeout_s
    pending = set(ranks)
    while pending and time.time() < deadline:
        for r in list(pending):
            try:
                if os.path.getsize(os.path.join(out_dir, f"rank{r}.stack")) > 0:
                    pending.discard(r)
            except OSError:
                pass
        time.sleep(0.05)
    time.sleep(0.05)  # let the last writer finish its lines


def _process_state(pid: int | None) -> str | None:
    """The state letter of ``/proc/<pid>/stat`` (R, S, D, T stopped, t traced, Z...), None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError, TypeError):
        return None


def _killed(rank: int, out_dir: str, start: float, now: float) -> RankFailure:
    """A rank that was still running: its stack, whether it waited inside a collective (its heartbeat), its
    process state (a rank stopped by SIGSTOP or a debugger cannot dump a stack) and its last heartbeat."""
    try:
        with open(os.path.join(out_dir, f"rank{rank}.stack")) as f:
            stack = main_thread_stack(f.read())
    except OSError:
        stack = ""
    beat_path = os.path.join(out_dir, f"rank{rank}.beat")
    beat = _read_result(beat_path)
    try:
        last_beat = start + now - os.path.getmtime(beat_path)
    except OSError:
        last_beat = None
    inside = beat.get("in_collective") if isinstance(beat, dict) else None
    idle = (start + now - beat["since"]) if isinstance(beat, dict) and inside is False else None
    text = ("stack when killed:\n" + stack) if stack else None
    if not stack and beat is None:
        text = ("no stack: the rank had not reached its own code yet (spawning a rank and importing torch can "
                "take many seconds on a busy machine)")
    return RankFailure(rank, "killed", now, traceback=text, at=start + now, in_collective=inside, idle_s=idle,
                       where=innermost_own_frame(stack), last_beat_s=last_beat)


def _stop(procs: Sequence[Any], out_dir: str, start: float, failures: dict[int, RankFailure],
          stacks: bool = True) -> None:
    """Dump the stacks of live children (when asked), then terminate, kill and reap every child."""
    alive = [(r, p) for r, p in enumerate(procs) if p.is_alive()]
    states = {r: _process_state(p.pid) for r, p in alive}  # before SIGUSR1 / SIGTERM change anything
    if alive and stacks and hasattr(signal, "SIGUSR1"):
        for _, p in alive:
            try:
                os.kill(p.pid, signal.SIGUSR1)
            except OSError:
                pass
        _await_stacks(out_dir, [r for r, _ in alive], timeout_s=3.0)
    now = time.time() - start
    for r, _ in alive:
        if r not in failures:
            failures[r] = _killed(r, out_dir, start, now)
            failures[r].process_state = states.get(r)
    for _, p in alive:
        p.terminate()
    for _, p in alive:
        p.join(2.0)
        if p.is_alive():
            p.kill()
    for p in procs:
        if p.pid is not None:
            p.join(5.0)


def launch_local(
    fn: Callable[..., Any],
    topology: Topology | str,
    *,
    args: tuple = (),
    timeout_s: float = 120,
    backend: str = "gloo",
    env: Mapping[str, str] | None = None,
    pg_timeout_s: float = DEFAULT_PG_TIMEOUT_S,
    failure_grace_s: float = 10.0,
    child_setup: Callable[[int], None] | None = None,
) -> list:
    """Run ``fn(rank, *args)`` in ``topology.world_size`` spawned processes; return results in rank order.

    Each child has ``torch.distributed`` initialised (``backend``, ``file://`` store in a fresh temp
    dir, timeout ``pg_timeout_s``) and RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK
    set (plus ``env``). ``fn`` must be importable (a module-level function) and picklable, and so
    must ``args`` and its result; a lambda or nested function is refused with
    :class:`RuntimeSetupError` before anything starts.

    If a rank raises or exits, the others get ``failure_grace_s`` to finish or fail on their own
    (they usually raise within a second, as gloo sees the closed connection); then every child is
    killed and :class:`CollectiveError` is raised, culprit first (module docstring). Its
    ``failures`` attribute maps rank -> :class:`RankFailure`, ``culprits`` lists the ranks blamed,
    ``elapsed_s`` is the run's duration. The same happens when the whole run exceeds ``timeout_s``
    (ranks still running are reported as "killed" with their stacks).

    ``child_setup`` (optional, picklable) is called as ``child_setup(rank)`` in each child after the
    environment is set and before ``torch.distributed`` is initialised (e.g. to enter a network
    namespace); an exception there is reported like one from ``fn``.
    """
    topo = as_topology(topology)
    check_launch_args(fn, child_setup, timeout_s, pg_timeout_s, failure_grace_s)
    procs: list[Any] = []
    folder = RunFolder(procs)
    start = time.time()
    results: dict[int, Any] = {}
    failures: dict[int, RankFailure] = {}
    timed_out = False
    logger.info("launch_local: %d ranks (%s), backend %s, timeout %.0f s", topo.world_size, topo, backend, timeout_s)
    with SigtermGuard() as guard:
        try:
            _spawn(procs, fn, topo, args, folder.path, backend, env, pg_timeout_s, child_setup)
            timed_out = _wait(procs, folder.path, start, start + timeout_s, failure_grace_s, results, failures)
        except Signalled as sig:
            guard.signalled = sig.signum
        finally:
            _stop(procs, folder.path, start, failures, stacks=guard.signalled is None)
            folder.remove()
    guard.die_if_signalled(f"launch_local({topo})")
    elapsed = time.time() - start
    if failures:
        raise failure_error(topo, failures, elapsed, timeout_s, timed_out)
    logger.info("launch_local: %d ranks finished in %.1f s", topo.world_size, elapsed)
    return [results[r] for r in range(topo.world_size)]


def _spawn(procs: list, fn, topo: Topology, args: tuple, out_dir: str, backend: str, env, pg_timeout_s: float,
           child_setup) -> None:
    ctx = mp.get_context("spawn")
    init_file = os.path.join(out_dir, "store")
    for rank in range(topo.world_size):
        p = ctx.Process(
            target=child_main,
            args=(rank, (topo.num_hosts, topo.local_size), fn, tuple(args), init_file, out_dir, backend,
                  dict(env) if env else None, float(pg_timeout_s), child_setup, os.getpid()),
            name=f"dmt-rank{rank}",
        )
        try:
            p.start()
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise RuntimeSetupError(
                f"launch_local: the arguments of {getattr(fn, '__qualname__', fn)!r} cannot be sent to the rank "
                f"processes ({type(exc).__name__}: {exc})",
                "pass only picklable values in args= (tensors, numbers, strings, dataclasses of module-level "
                "classes), not lambdas, open files or locks") from None
        procs.append(p)


def _collect(rank: int, p: Any, out_dir: str, start: float, results: dict, failures: dict) -> None:
    """Record the result or failure of a child that has exited."""
    p.join()
    payload = _read_result(os.path.join(out_dir, f"rank{rank}.pkl"))
    seen = time.time() - start
    if payload is not None and payload[0] == "ok" and p.exitcode == 0:
        results[rank] = payload[1]
    elif payload is not None and payload[0] == "error":
        _, exc_type, msg, tb, when = payload
        failures[rank] = RankFailure(rank, "raised", when - start, p.exitcode, exc_type, msg, tb, at=when)
    elif p.exitcode != 0:
        failures[rank] = RankFailure(rank, "exited", seen, p.exitcode, at=start + seen)
    else:
        failures[rank] = RankFailure(rank, "no_result", seen, p.exitcode, at=start + seen)


def _wait(procs, out_dir: str, start: float, deadline: float, grace_s: float, results: dict,
          failures: dict) -> bool:
    """Poll the children until all exited, the deadline passed, or a failure's grace ran out; True on timeout."""
    stop_at = deadline
    while True:
        pending = 0
        for rank, p in enumerate(procs):
            if rank in results or rank in failures:
                continue
            if p.exitcode is None:
                pending += 1
                continue
            _collect(rank, p, out_dir, start, results, failures)
            if rank in failures and stop_at == deadline:
                stop_at = min(deadline, time.time() + grace_s)
                logger.warning("launch_local: rank %d failed; waiting up to %.0f s for the others", rank, grace_s)
        if pending == 0:
            return False
        if time.time() >= stop_at:
            return not failures
        time.sleep(_POLL_S)


# --------------------------------------------------------------------------- torchrun


def init_from_env(
    topology: Topology | str,
    backend: str | None = None,
    *,
    timeout_s: float = DEFAULT_PG_TIMEOUT_S,
    join_timeout_s: float | None = None,
) -> HierarchicalGroups:
    """Initialise the default group from torchrun's environment and build the topology's groups.

    Reads RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT and checks them
    against each other and ``topology`` before anything waits (``launch_env``: each mistake is a
    :class:`RuntimeSetupError` naming the variable and the fix). ``backend`` defaults to NCCL when CUDA
    is available, else gloo. Unless ``torch.distributed`` is already initialised, rank 0 (or torchrun's
    agent) hosts the TCP store at MASTER_ADDR:MASTER_PORT; a port in use, or ranks that do not join
    within ``join_timeout_s`` (default 20 s), are typed errors. Collective: every rank must call it.
    """
    topo = as_topology(topology)
    env = read_torchrun_env(topo, need_master=not dist.is_initialized())
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(topo.local_of(env.rank))
    if not dist.is_initialized():
        rendezvous(env, backend, timeout_s, join_timeout_s)
    return HierarchicalGroups.build(topo, timeout_s=timeout_s)
