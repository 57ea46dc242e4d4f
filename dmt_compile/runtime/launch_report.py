"""Who is to blame when a :func:`~dmt_compile.runtime.launch.launch_local` run fails, told culprit first.

Every failed rank is one of

* a **root cause**: it raised its own error, exited, or left no result;
* **stuck**: alive when the run was cut short and *outside* every collective (its heartbeat and its
  stack say so) - the rank its peers were waiting for;
* a **victim**: it failed inside a collective (a :class:`CollectiveError`, a gloo timeout or a
  closed connection), or was killed while waiting inside one.

The error's first line names the culprits (root causes, else stuck ranks); their tracebacks or
stacks come first, the victims follow with the last lines of theirs. Ranks that failed with the same
error (e.g. a factory that fails everywhere) are reported once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from dmt_compile.errors import CollectiveError
from dmt_compile.runtime.launch_child import COLLECTIVE_PATHS
from dmt_compile.topo.topology import Topology

__all__ = ["RankFailure", "failure_error", "main_thread_stack"]

_HEADLINE_CHARS = 240  # of a rank's error message in the first line (the full text follows below)
_VICTIM_LINES = 6  # lines of a victim's traceback quoted (the error and the frame it came from)
_CONSEQUENCE = re.compile(r"timed? ?out|timeout|connection (closed|reset)|broken pipe|closed by peer|"
                          r"another rank|peer", re.I)
_FRAME = re.compile(r'File "([^"]+)", line (\d+) in (\S+)')


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
    in_collective: bool | None = None  # killed ranks: was the main thread inside a collective
    idle_s: float | None = None  # killed ranks outside any collective: seconds since they left the last one
    where: str | None = None  # killed ranks: innermost frame of the rank's own code
    process_state: str | None = None  # killed ranks: /proc/<pid>/stat state when the run was cut short
    last_beat_s: float | None = None  # killed ranks: seconds since its watchdog's last heartbeat

    @property
    def is_stopped(self) -> bool:
        """Killed while stopped (state T: SIGSTOP / Ctrl-Z, t: a debugger): it cannot take part in anything."""
        return self.kind == "killed" and self.process_state in ("T", "t")

    @property
    def is_consequence(self) -> bool:
        """True when the rank failed in (or waited inside) a collective, i.e. probably because of another rank."""
        if self.kind == "killed":
            return self.in_collective is not False and not self.is_stopped
        if self.kind != "raised":
            return False
        if self.exc_type == "CollectiveError":
            return True
        in_dist = any(p in (self.traceback or "") for p in COLLECTIVE_PATHS)
        return in_dist and bool(_CONSEQUENCE.search(self.message or ""))

    @property
    def is_stuck(self) -> bool:
        """Alive when the run was cut short, and outside every collective: the rank the others waited for."""
        return self.kind == "killed" and (self.in_collective is False or self.is_stopped)

    def headline(self) -> str:
        if self.kind == "raised":
            first = (self.message or "").strip().splitlines()
            line = first[0] if first else ""
            line = line if len(line) <= _HEADLINE_CHARS else line[:_HEADLINE_CHARS] + " ..."
            return f"rank {self.rank} raised {self.exc_type}" + (f": {line}" if line else "")
        if self.kind == "exited":
            code = self.exitcode
            how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
            return f"rank {self.rank} {how} without a Python error"
        if self.kind == "no_result":
            return f"rank {self.rank} exited cleanly but left no result"
        if self.is_stopped:
            where = {True: "inside a collective", False: "outside any collective"}.get(self.in_collective, "")
            beat = f"; last heartbeat {self.last_beat_s:.0f} s before the end" if self.last_beat_s is not None else ""
            how = "by SIGSTOP or Ctrl-Z" if self.process_state == "T" else "by a debugger (traced)"
            return (f"rank {self.rank} was stopped {how} (process state {self.process_state} in /proc) "
                    f"{where}{beat}").replace("  ", " ").rstrip()
        if self.is_stuck:
            idle = f" for {self.idle_s:.0f} s" if self.idle_s is not None else ""
            at = f" (in {self.where})" if self.where else ""
            return f"rank {self.rank} hung: alive but outside any collective{idle}{at}"
        return f"rank {self.rank} was still running"

    def describe(self, max_lines: int | None = None) -> str:
        if self.kind == "raised":
            head = f"rank {self.rank} raised {self.exc_type} after {self.elapsed_s:.1f} s"
        elif self.kind == "killed":
            state = ("stopped (process state " + str(self.process_state) + ")" if self.is_stopped
                     else "outside any collective" if self.in_collective is False
                     else "waiting inside a collective" if self.in_collective else "still running")
            head = f"rank {self.rank} was {state} after {self.elapsed_s:.1f} s and was killed"
        else:
            head = f"{self.headline()} after {self.elapsed_s:.1f} s"
        body = (self.traceback or self.message or "").rstrip()
        if not body:
            return head
        lines = body.splitlines()
        if max_lines is not None and len(lines) > max_lines:
            lines = [f"... ({len(lines) - max_lines} lines above left out)"] + lines[-max_lines:]
        return f"{head}:\n" + "\n".join("    | " + line for line in lines)


def main_thread_stack(dump: str) -> str:
    """The main thread's block of a faulthandler ``all_threads`` dump (the one running the rank)."""
    blocks = [b.strip("\n") for b in re.split(r"\n(?=(?:Current thread|Thread) 0x)", dump) if b.strip()]
    for block in blocks:
        if "child_main" in block:
            return block
    return dump.strip()


def innermost_own_frame(stack: str) -> str | None:
    """``func (file:line)`` of the innermost frame outside torch, threading and the launcher."""
    for path, line, func in _FRAME.findall(stack):
        if any(skip in path for skip in ("/torch/", "threading.py", "launch_child.py", "multiprocessing")):
            continue
        return f"{func} at {path.rsplit('/', 1)[-1]}:{line}"
    return None


def _same_error(f: RankFailure) -> tuple:
    """Failures that compare equal here are one error seen on several ranks (rank numbers masked)."""
    if f.kind != "raised":
        return ("rank", f.rank)
    text = re.sub(rf"\brank {f.rank}\b", "rank <r>", f.message or "")
    return (f.exc_type, text)


def _grouped(failures: Sequence[RankFailure]) -> list[list[RankFailure]]:
    groups: dict[tuple, list[RankFailure]] = {}
    for f in failures:
        groups.setdefault(_same_error(f), []).append(f)
    return list(groups.values())


def _describe_group(group: list[RankFailure], max_lines: int | None) -> str:
    if len(group) == 1:
        return group[0].describe(max_lines)
    first = group[0]
    ranks = sorted(f.rank for f in group)
    times = sorted(f.elapsed_s for f in group)
    span = f"{times[0]:.1f} s" if times[-1] - times[0] < 0.05 else f"{times[0]:.1f}-{times[-1]:.1f} s"
    text = first.describe(max_lines)
    head, _, body = text.partition("\n")
    return (f"ranks {ranks} raised the same {first.exc_type} after {span} "
            f"(quoted once, from rank {first.rank}):" + ("\n" + body if body else ""))


def _headline(topo: Topology, culprits: list[RankFailure], victims: list[RankFailure], elapsed: float) -> str:
    waited = sorted(f.rank for f in victims)
    first = culprits[0] if culprits else None
    if first is None:
        return (f"launch_local({topo}) failed after {elapsed:.1f} s: ranks {waited} all failed or waited inside "
                "collectives and no rank stands out (mismatched collectives or a deadlock)")
    same = sorted(f.rank for f in culprits if _same_error(f) == _same_error(first))
    if first.is_stuck:
        text = f"launch_local({topo}) failed: {first.headline()}"
    elif len(same) > 1:
        text = f"launch_local({topo}) failed: ranks {same} failed with the same error: {first.headline()}"
    else:
        text = f"launch_local({topo}) failed: rank {first.rank} failed first: {first.headline()}"
    if waited:
        text += f"; ranks {waited} failed waiting for it in a collective"
    return text + f" (after {elapsed:.1f} s)"


def failure_error(topo: Topology, failures: dict[int, RankFailure], elapsed: float, timeout_s: float,
                  timed_out: bool) -> CollectiveError:
    """The :class:`CollectiveError` of a failed run: culprits first (module docstring)."""
    roots = sorted((f for f in failures.values() if not f.is_consequence and f.kind != "killed"),
                   key=lambda f: (f.elapsed_s, f.rank))
    stuck = sorted((f for f in failures.values() if f.is_stuck), key=lambda f: f.rank)
    culprits = roots + stuck
    victims = sorted((f for f in failures.values() if f not in culprits), key=lambda f: (f.elapsed_s, f.rank))
    if timed_out:
        problem = (f"launch_local({topo}) timed out after {timeout_s:.0f} s; ranks {sorted(failures)} were still "
                   "running" + (f"; {stuck[0].headline()}" if stuck else ""))
        fix = "look at the stacks below for where each rank was; raise timeout_s if the work is just slow"
    else:
        problem = _headline(topo, culprits, victims, elapsed)
        if roots:
            fix = "fix the first failing rank's error (the others usually fail because it died)"
        elif any(f.is_stopped for f in stuck):
            fix = (f"ranks {[f.rank for f in stuck if f.is_stopped]} were stopped (SIGSTOP, Ctrl-Z or a debugger) "
                   "while the others waited for them: resume them (kill -CONT <pid>) or detach the debugger, and "
                   "do not stop the ranks of a running job")
        elif stuck:
            fix = (f"ranks {[f.rank for f in stuck]} were alive but stuck outside any collective (stacks below); "
                   "the others timed out waiting for them. Fix what the stuck rank is doing, or raise "
                   "pg_timeout_s if it is just slow")
        else:
            fix = "every rank waited in a collective: check that all ranks call the same collectives in the same order"
    parts = [_describe_group(g, None) for g in _grouped(culprits)]
    parts += [_describe_group(g, _VICTIM_LINES) for g in _grouped(victims)]
    err = CollectiveError(problem + "\n" + "\n".join(parts), fix)
    err.failures = failures  # type: ignore[attr-defined]
    err.elapsed_s = elapsed  # type: ignore[attr-defined]
    err.timed_out = timed_out  # type: ignore[attr-defined]
    err.culprits = [f.rank for f in culprits]  # type: ignore[attr-defined]
    return err
