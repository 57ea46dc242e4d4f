"""Starting a DMT run: N x L local processes (:func:`launch_local`) or under torchrun (:func:`init_from_env`).

:func:`launch_local` never hangs and never leaves child processes behind: a rank that raises,
exits or outlives the overall ``timeout_s`` makes it kill every child and raise
:class:`~dmt_compile.errors.CollectiveError` naming the rank(s) and quoting their tracebacks (and,
for ranks that had to be killed, their Python stacks at that moment).

Process-group timeout: ``pg_timeout_s`` (default 30 s) bounds how long a rank waits in a
collective for a peer that is alive but stuck; a peer that *died* is detected by gloo as soon as
its sockets close (about a second), long before that.
"""
from __future__ import annotations

import datetime
import faulthandler
import logging
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dmt_compile.errors import CollectiveError, RuntimeSetupError
from dmt_compile.runtime.groups import HierarchicalGroups, validate_world
from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Topology

__all__ = ["launch_local", "init_from_env", "RankFailure", "DEFAULT_PG_TIMEOUT_S"]

logger = logging.getLogger(__name__)

#: Default process-group timeout (seconds): well under the 60 s in which survivors must fail.
DEFAULT_PG_TIMEOUT_S = 30.0
_POLL_S = 0.05


@dataclass
class RankFailure:
    """Why one rank of a :func:`launch_local` run did not return a result."""

    rank: int
    kind: str  # "raised" | "exited" | "no_result" | "killed" (still running when the run was cut short)
    elapsed_s: float  # seconds from launch until the rank raised / was seen dead / was killed
    exitcode: int | None = None
    exc_type: str | None = None
    message: str | None = None
    traceback: str | None = None  # the child's traceback, or its stack when killed
    at: float = 0.0  # wall-clock time (time.time()) of the same event

    @property
    def is_consequence(self) -> bool:
        """True when the rank failed in a collective (CollectiveError), i.e. probably because of another rank."""
        return self.kind == "killed" or (self.kind == "raised" and self.exc_type == "CollectiveError")

    def describe(self) -> str:
        if self.kind == "raised":
            head = f"rank {self.rank} raised {self.exc_type} after {self.elapsed_s:.1f} s"
        elif self.kind == "exited":
            code = self.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            head = f"rank {self.rank} {how} without a Python error after {self.elapsed_s:.1f} s"
        elif self.kind == "no_result":
            head = f"rank {self.rank} exited cleanly but left no result after {self.elapsed_s:.1f} s"
        else:
            head = f"rank {self.rank} was still running after {self.elapsed_s:.1f} s and was killed"
        body = (self.traceback or self.message or "").rstrip()
        if body:
            body = "\n".join("    | " + line for line in body.splitlines())
            return f"{head}:\n{body}"
        return head


# --------------------------------------------------------------------------- child side


def _write_atomic(path: str, payload: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(payload, f)
    os.replace(tmp, path)


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


def _child_main(
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
) -> None:
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
        _write_atomic(result_path, ("ok", result, time.time()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        try:
            _write_atomic(
                result_path, ("error", type(exc).__name__, str(exc), traceback.format_exc(), time.time())
            )
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)  # skip gloo teardown and atexit, which can block on dead peers


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


def _stop(procs: Sequence[Any], out_dir: str, start: float, failures: dict[int, RankFailure]) -> None:
    """Dump the stacks of live children, then terminate, kill and reap every child."""
    alive = [(r, p) for r, p in enumerate(procs) if p.is_alive()]
    if alive and hasattr(signal, "SIGUSR1"):
        for _, p in alive:
            try:
                os.kill(p.pid, signal.SIGUSR1)
            except OSError:
                pass
        _await_stacks(out_dir, [r for r, _ in alive], timeout_s=3.0)
    now = time.time() - start
    for r, p in alive:
        if r not in failures:
            try:
                with open(os.path.join(out_dir, f"rank{r}.stack")) as f:
                    stack = f.read()
            except OSError:
                stack = ""
            failures[r] = RankFailure(
                r, "killed", now, traceback=("stack when killed:\n" + stack) if stack else None, at=start + now
            )
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
    set (plus ``env``). ``fn`` must be picklable (a module-level function) and so must its result.

    If a rank raises or exits, the others get ``failure_grace_s`` to finish or fail on their own
    (they usually raise within a second, as gloo sees the closed connection); then every child is
    killed and :class:`CollectiveError` is raised. Its ``failures`` attribute maps rank ->
    :class:`RankFailure`; ``elapsed_s`` is the run's duration. The same happens when the whole run
    exceeds ``timeout_s`` (ranks still running are reported as "killed" with their stacks).

    ``child_setup`` (optional, picklable) is called as ``child_setup(rank)`` in each child after the
    environment is set and before ``torch.distributed`` is initialised (e.g. to enter a network
    namespace); an exception there is reported like one from ``fn``.
    """
    topo = as_topology(topology)
    out_dir = tempfile.mkdtemp(prefix="dmt_launch_")
    start = time.time()
    procs: list[Any] = []
    results: dict[int, Any] = {}
    failures: dict[int, RankFailure] = {}
    timed_out = False
    logger.info("launch_local: %d ranks (%s), backend %s, timeout %.0f s", topo.world_size, topo, backend, timeout_s)
    try:
        procs = _spawn(fn, topo, args, out_dir, backend, env, pg_timeout_s, child_setup)
        timed_out = _wait(procs, out_dir, start, start + timeout_s, failure_grace_s, results, failures)
    finally:
        _stop(procs, out_dir, start, failures)
        shutil.rmtree(out_dir, ignore_errors=True)
    elapsed = time.time() - start
    if failures:
        raise _failure_error(topo, failures, elapsed, timeout_s, timed_out)
    logger.info("launch_local: %d ranks finished in %.1f s", topo.world_size, elapsed)
    return [results[r] for r in range(topo.world_size)]


def _spawn(fn, topo: Topology, args: tuple, out_dir: str, backend: str, env, pg_timeout_s: float,
           child_setup) -> list[Any]:
    ctx = mp.get_context("spawn")
    init_file = os.path.join(out_dir, "store")
    procs = []
    for rank in range(topo.world_size):
        p = ctx.Process(
            target=_child_main,
            args=(rank, (topo.num_hosts, topo.local_size), fn, tuple(args), init_file, out_dir, backend,
                  dict(env) if env else None, float(pg_timeout_s), child_setup),
            name=f"dmt-rank{rank}",
        )
        p.start()
        procs.append(p)
    return procs


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


def _failure_error(topo: Topology, failures: dict[int, RankFailure], elapsed: float, timeout_s: float,
                   timed_out: bool) -> CollectiveError:
    # root causes first: a rank that exited or raised its own error, before ranks that only saw it in a collective
    ordered = sorted(failures.values(), key=lambda f: (f.kind == "killed", f.is_consequence, f.elapsed_s, f.rank))
    if timed_out:
        problem = f"launch_local({topo}) timed out after {timeout_s:.0f} s; ranks {sorted(failures)} were still running"
        fix = "look at the stacks below for the collective each rank waits in; raise timeout_s if the work is just slow"
    else:
        problem = (f"launch_local({topo}) failed: rank {ordered[0].rank} failed first; failing ranks {sorted(failures)} "
                   f"(after {elapsed:.1f} s)")
        fix = "fix the first failing rank's error (the others usually fail because it died)"
        stuck = sorted(f.rank for f in ordered if f.kind == "killed")
        if stuck and all(f.is_consequence for f in ordered):
            fix = (f"ranks {stuck} were alive but stuck (their stacks are above); the others timed out "
                   "waiting for them in a collective")
    err = CollectiveError(problem + "\n" + "\n".join(f.describe() for f in ordered), fix)
    err.failures = failures  # type: ignore[attr-defined]
    err.elapsed_s = elapsed  # type: ignore[attr-defined]
    err.timed_out = timed_out  # type: ignore[attr-defined]
    return err


# --------------------------------------------------------------------------- torchrun


def init_from_env(
    topology: Topology | str,
    backend: str | None = None,
    *,
    timeout_s: float = DEFAULT_PG_TIMEOUT_S,
) -> HierarchicalGroups:
    """Initialise the default group from torchrun's environment and build the topology's groups.

    Reads RANK, WORLD_SIZE, LOCAL_WORLD_SIZE (and LOCAL_RANK) and checks them against ``topology``
    (:class:`RuntimeSetupError` says how they differ). ``backend`` defaults to NCCL when CUDA is
    available, else gloo. Initialises with ``env://`` (MASTER_ADDR/MASTER_PORT from torchrun) unless
    ``torch.distributed`` is already initialised. Collective: every rank must call it.
    """
    topo = as_topology(topology)
    values: dict[str, int | None] = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "LOCAL_RANK"):
        raw = os.environ.get(name)
        try:
            values[name] = int(raw) if raw not in (None, "") else None
        except ValueError:
            raise RuntimeSetupError(f"environment variable {name}={raw!r} is not an integer", f"unset or fix {name}") from None
    if values["RANK"] is None or values["WORLD_SIZE"] is None:
        raise RuntimeSetupError(
            "RANK and WORLD_SIZE are not set: this process was not started by torchrun",
            f"run with python -m torch.distributed.run --nnodes={topo.num_hosts} --nproc-per-node={topo.local_size} ..., "
            "or use dmt_compile.runtime.launch.launch_local on one machine",
        )
    rank, world = values["RANK"], values["WORLD_SIZE"]
    validate_world(topo, world, values["LOCAL_WORLD_SIZE"], source="WORLD_SIZE")
    local_rank = values["LOCAL_RANK"]
    if local_rank is not None and local_rank != topo.local_of(rank):
        raise RuntimeSetupError(
            f"RANK={rank} has LOCAL_RANK={local_rank}, but topology {topo} puts rank {rank} at local index "
            f"{topo.local_of(rank)} (ranks must be host-major: rank = host * {topo.local_size} + local)",
            "start the same number of processes on every node (torchrun --nproc-per-node) so ranks are host-major",
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(topo.local_of(rank))
    if not dist.is_initialized():
        dist.init_process_group(
            backend, init_method="env://", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout_s)
        )
    return HierarchicalGroups.build(topo, timeout_s=timeout_s)
