"""What :func:`~dmt_compile.runtime.launch.launch_local` does so that nothing outlives it.

* :func:`check_launch_args` refuses, before any process starts, what the ranks could not run: a
  lambda, a nested function or one typed into an interactive session (spawned ranks import ``fn``
  by name), and timeouts that are not positive.
* :class:`RunFolder` is the run's ``dmt_launch_*`` temporary folder. A small janitor process
  removes it if the launcher is killed outright (SIGKILL: nothing of the launcher runs, and the
  ranks die with it through ``PR_SET_PDEATHSIG``); at interpreter exit, live ranks are killed and
  the folder removed.
* :class:`SigtermGuard` turns a SIGTERM (``kill``, ``timeout N``) into an exception in the launcher
  so it stops the ranks and removes the folder, then dies of the signal as it would have.
"""
from __future__ import annotations

import atexit
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

from dmt_compile.errors import CollectiveError, RuntimeSetupError

__all__ = ["check_launch_args", "RunFolder", "SigtermGuard", "Signalled"]

logger = logging.getLogger(__name__)

# Runs with -S (standard library only): removes the folder once the launcher is gone; exits as soon
# as the launcher removed the folder itself.
_JANITOR = """
import os, shutil, sys, time
parent, folder = int(sys.argv[1]), sys.argv[2]
while os.path.isdir(folder):
    if os.getppid() != parent:
        time.sleep(0.5)
        shutil.rmtree(folder, ignore_errors=True)
        break
    time.sleep(0.2)
"""

_ACTIVE: dict[str, list[Any]] = {}  # folder -> the run's rank processes


def _importable(obj: Any, what: str) -> None:
    """Refuse what a spawned rank cannot import (lambdas, nested functions, objects of an interactive session)."""
    if not callable(obj):
        raise RuntimeSetupError(f"launch_local: {what} must be a function, got {type(obj).__name__} {obj!r}",
                                f"pass a module-level function as {what}")
    name = getattr(obj, "__qualname__", repr(obj))
    fix = (f"the function must be importable: define {what} at module level in a file (not a lambda, a nested "
           "function or a function typed into an interactive session) and pass its data through args=")
    main = sys.modules.get("__main__")
    if getattr(obj, "__module__", None) == "__main__" and not getattr(main, "__file__", None):
        raise RuntimeSetupError(f"launch_local: {what} {name} is defined in an interactive session; the rank "
                                "processes cannot import it", fix)
    try:
        pickle.dumps(obj)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise RuntimeSetupError(f"launch_local: {what} {name} cannot be sent to the rank processes "
                                f"({type(exc).__name__}: {exc})", fix) from None


def check_launch_args(fn: Any, child_setup: Any, timeout_s: Any, pg_timeout_s: Any, failure_grace_s: Any) -> None:
    """Raise :class:`RuntimeSetupError` for arguments a run cannot use (module docstring)."""
    _importable(fn, "fn")
    if child_setup is not None:
        _importable(child_setup, "child_setup")
    for name, value, positive in (("timeout_s", timeout_s, True), ("pg_timeout_s", pg_timeout_s, True),
                                  ("failure_grace_s", failure_grace_s, False)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if not number or value < 0 or (positive and value == 0) or value == float("inf"):
            bound = "a positive, finite number of seconds" if positive else "zero or more seconds (finite)"
            raise RuntimeSetupError(f"launch_local: {name} must be {bound}, got {value!r}", f"pass e.g. {name}=60")


class RunFolder:
    """The run's temporary folder, removed on every path (module docstring)."""

    def __init__(self, procs: list[Any]):
        self.path = tempfile.mkdtemp(prefix="dmt_launch_")
        _ACTIVE[self.path] = procs
        try:
            self.janitor: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-S", "-c", _JANITOR, str(os.getpid()), self.path],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        except OSError:  # pragma: no cover - the folder still goes on every path but SIGKILL
            logger.warning("launch_local: could not start the janitor for %s", self.path, exc_info=True)
            self.janitor = None

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        _ACTIVE.pop(self.path, None)
        if self.janitor is not None:
            try:
                self.janitor.wait(2.0)  # it exits once the folder is gone
            except subprocess.TimeoutExpired:  # pragma: no cover
                self.janitor.kill()
                self.janitor.wait()


@atexit.register
def _cleanup_at_exit() -> None:  # pragma: no cover - an interpreter exiting while a run is live
    for path, procs in list(_ACTIVE.items()):
        for p in procs:
            if p.is_alive():
                p.kill()
        shutil.rmtree(path, ignore_errors=True)


class Signalled(BaseException):
    """SIGTERM reached the launcher (a BaseException, so ``except Exception`` in user code lets it pass)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_signalled(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_IGN)  # one is enough; the cleanup must not be cut short
    raise Signalled(signum)


class SigtermGuard:
    """Within the block a SIGTERM raises :class:`Signalled` (main thread, default disposition only)."""

    def __init__(self) -> None:
        self.signalled: int | None = None
        self.active = threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def __enter__(self) -> "SigtermGuard":
        if self.active:
            signal.signal(signal.SIGTERM, _raise_signalled)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def die_if_signalled(self, what: str) -> None:
        """After the cleanup: die of the signal as if it had not been caught."""
        if self.signalled is None:
            return
        logger.error("%s: stopped by signal %d; ranks stopped and temporary folder removed", what, self.signalled)
        os.kill(os.getpid(), self.signalled)
        raise CollectiveError(f"{what} was interrupted by signal {self.signalled}",
                              "the ranks were stopped; start the run again")
