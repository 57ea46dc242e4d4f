"""Let gloo's worker threads finish before the interpreter finalizes (an abort at exit otherwise).

The mechanism (a core dump of a rank that aborted with "terminate called without an active
exception" after ``destroy_process_group``): a gloo worker thread finishes a collective, wakes the
caller, and *then* destroys its work object, whose tensors are Python tensors -- releasing them takes
the GIL. ``destroy_process_group`` shuts the groups down but does not join their workers; a group
object still referenced (a :class:`~dmt_compile.runtime.groups.HierarchicalGroups` or a model kept
in a module global, as every training script does) lives until interpreter finalization. If the
main thread reaches ``Py_FinalizeEx`` while a worker, descheduled under CPU load, has not yet
released its tensors, the worker's ``take_gil`` makes it exit the thread mid-destructor and C++
calls ``std::terminate`` (rc -6). A known PyTorch problem (its c10d atexit-destroy attempt was
withdrawn); it needs only a loaded box and a group that outlives ``destroy_process_group``.

The drain: an ``atexit`` handler (it runs before finalization, with the interpreter whole) that
releases the GIL in short sleeps until no other thread of the process has been runnable in
:data:`QUIET_CHECKS` consecutive looks at ``/proc/self/task``, at most :data:`MAX_WAIT_S`. A worker
that still owes a release is runnable (preempted, or woken for the GIL the sleep left free); an
idle worker sleeps on its condition variable. Where ``/proc`` is absent it sleeps
:data:`FALLBACK_S` once. Installed by the first :meth:`HierarchicalGroups.build`.
"""
from __future__ import annotations

import atexit
import os
import threading
import time

__all__ = ["install", "drain", "runnable_threads"]

QUIET_CHECKS = 3
POLL_S = 0.005
MAX_WAIT_S = 2.0
FALLBACK_S = 0.05

_installed = False
_lock = threading.Lock()


def runnable_threads() -> int | None:
    """Threads of this process other than the caller in state R (running or runnable); None without /proc."""
    me = threading.get_native_id()
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return None
    count = 0
    for tid in tids:
        if int(tid) == me:
            continue
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the thread exited between the listing and the read
            continue
        state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]  # comm may hold spaces or ')'
        if state == b"R":
            count += 1
    return count


def drain(max_wait_s: float = MAX_WAIT_S) -> float:
    """Release the GIL until the other threads are quiet (or ``max_wait_s``); returns the seconds waited."""
    start = time.monotonic()
    if runnable_threads() is None:
        time.sleep(FALLBACK_S)
        return time.monotonic() - start
    quiet = 0
    while quiet < QUIET_CHECKS and time.monotonic() - start < max_wait_s:
        time.sleep(POLL_S)
        quiet = quiet + 1 if runnable_threads() == 0 else 0
    return time.monotonic() - start


def _drain_at_exit() -> None:
    try:
        drain()
    except Exception:  # pragma: no cover - never turn a clean exit into a traceback
        pass


def install() -> None:
    """Register the exit drain once per process (idempotent, thread-safe)."""
    global _installed
    with _lock:
        if not _installed:
            atexit.register(_drain_at_exit)
            _installed = True
