"""A training run's checkpoint root: `DIR/dmt_run.json`, `DIR/step_NNNNNN/`, `DIR/latest`.

* `dmt_run.json` records the run id. A new run in a root that holds another run's checkpoints is
  refused (`resume=True` continues it; `overwrite=True` starts anew and deletes that run's
  checkpoints, ours by their marker); a non-empty directory that is not a root is refused too
  (`overwrite=True` writes beside its files and never touches them).
* `dmt_run.lock` keeps a second writer out for the whole run (stale when its pid is dead).
* A step is saved to `step_NNNNNN` (a fresh sibling renamed into place, `checkpoint_files`), then
  committed by one atomic rename of `latest.tmp` onto `latest`. A step directory newer than
  `latest` is a save the run never committed: resuming says so and does not use it.
* `resume` loads `latest`; when it is missing or damaged it names the damage and falls back to
  the newest intact step of this run, by step number (`step_999999` < `step_1000000`).
"""
from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

from dmt_compile.errors import CheckpointDamaged, CheckpointError
from dmt_compile.training import checkpoint_files as files
from dmt_compile.training.checkpoint_read import LATEST, RUN_FILE

__all__ = ["CheckpointRun", "check_root", "step_dirs", "RUN_FILE", "LATEST", "LOCK"]

LOCK = "dmt_run.lock"
RUN_FORMAT = "dmt_compile-run/1"
_STEP = re.compile(r"^step_(\d+)$")


def step_dirs(root: str) -> list[tuple[int, str]]:
    """(step, name) of the step directories under `root`, by step number."""
    out = [(int(m.group(1)), n) for n in os.listdir(root) if (m := _STEP.match(n))
           and os.path.isdir(os.path.join(root, n))] if os.path.isdir(root) else []
    return sorted(out)


def _run_id(root: str) -> str | None:
    name = os.path.join(root, RUN_FILE)
    if not os.path.isfile(name):
        return None
    try:
        with open(name, encoding="utf-8") as fh:
            run = json.load(fh)
        return str(run["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{name} cannot be read ({type(exc).__name__}: {exc})",
                              "restore it, or start a new run in another directory") from None


def _refuse_missing(root: str) -> None:
    if not os.path.exists(root):
        raise CheckpointError(f"cannot resume: {root} does not exist, so there is nothing to resume "
                              "(a mistyped --checkpoint-dir?)", "check the path; drop --resume to start a new run")
    if not os.path.isdir(root):
        raise CheckpointError(f"cannot resume: {root} is a file", "pass the run's checkpoint directory")
    raise CheckpointError(f"cannot resume: {root} is not a dmt_compile run's checkpoint directory (no {RUN_FILE})",
                          "check the path (a mistyped --checkpoint-dir?); drop --resume to start a new run")


def check_root(root: str, resume: bool, overwrite: bool) -> None:
    """Refuse, without changing anything, a root this run may not use (module docstring); any rank,
    or the launcher before it starts ranks."""
    root = os.path.abspath(root)
    if resume and not os.path.isfile(os.path.join(root, RUN_FILE)):
        _refuse_missing(root)
    if os.path.exists(root) and not os.path.isdir(root):
        raise CheckpointError(f"--checkpoint-dir {root} is a file", "pass a directory")
    if not os.path.isdir(root):
        return
    old = _run_id(root)
    if not resume and old is not None and not overwrite:
        steps = step_dirs(root)
        raise CheckpointError(
            f"{root} holds the checkpoints of another run ({len(steps)} step(s)"
            + (f", up to {steps[-1][1]}" if steps else "") + "); a new run there would mix with them",
            "add --resume to continue that run, --overwrite to start a new one there (deleting its "
            "checkpoints), or choose another --checkpoint-dir")
    if old is None and any(n != LOCK for n in os.listdir(root)) and not overwrite:
        raise CheckpointError(f"{root} is not empty and is not a dmt_compile run's checkpoint directory",
                              "choose a new or empty --checkpoint-dir, or pass --overwrite to write beside "
                              "its files (they are left untouched)")
    holder = files.lock_holder(os.path.join(root, LOCK))
    if holder is not None:
        raise holder


def _start_new(root: str, notes: list[str]) -> str:
    """Rank 0, lock held, `check_root` passed: make `root` a new run's root."""
    old = _run_id(root)
    if old is not None:  # --overwrite: that run's checkpoints go (ours, by their marker)
        removed = [name for _, name in step_dirs(root) if files.remove_ours(os.path.join(root, name))]
        for name in (LATEST, LATEST + ".tmp"):
            if os.path.isfile(os.path.join(root, name)):
                os.unlink(os.path.join(root, name))
        notes.append(f"--overwrite: deleted {len(removed)} checkpoint(s) of run {old} in {root}")
    run_id = uuid.uuid4().hex
    tmp = os.path.join(root, RUN_FILE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"format": RUN_FORMAT, "run_id": run_id}, fh)
    os.replace(tmp, os.path.join(root, RUN_FILE))
    return run_id


def _open_root(root: str, resume: bool, overwrite: bool) -> tuple[str, list[str]]:
    """Rank 0: (run id, notes) for a run writing to `root`; the lock taken."""
    notes: list[str] = []
    lock = os.path.join(root, LOCK)
    check_root(root, resume, overwrite)  # before anything is created
    try:
        os.makedirs(root, exist_ok=True)
        stale = files.acquire_lock(lock, f"the checkpoint directory {root}")
    except OSError as exc:
        raise files.os_error(exc, root) from None
    notes += [stale] if stale else []
    try:
        check_root(root, resume, overwrite)  # again, now that no other writer can change it
        run_id = _run_id(root) if resume else _start_new(root, notes)
    except BaseException:
        files.release_lock(lock)
        raise
    return run_id, notes


class CheckpointRun:
    """The checkpoints of one training run under one root (collective methods; module docstring)."""

    def __init__(self, root: str, run_id: str, overwrite: bool, notes: list[str]):
        self.root, self.run_id, self.overwrite, self.notes = root, run_id, overwrite, notes

    @classmethod
    def open(cls, model: Any, root: str, resume: bool = False, overwrite: bool = False) -> "CheckpointRun":
        from dmt_compile.training.checkpoint import _agree, _raise_first

        root = os.path.abspath(root)
        outcome: Any = None
        if model.rank == 0:
            try:
                outcome = _open_root(root, resume, overwrite)
            except CheckpointError as exc:
                outcome = exc
            except OSError as exc:
                outcome = files.os_error(exc, root)
        outcome = _agree(model, outcome)[0]
        _raise_first([outcome])
        return cls(root, outcome[0], overwrite, list(outcome[1]))

    def close(self, model: Any) -> None:
        if model.rank == 0:
            files.release_lock(os.path.join(self.root, LOCK))

    def save(self, model: Any, step: int, optimizer: Any = None, extra: Any = None) -> str:
        """Save step `step` and move `latest` to it."""
        from dmt_compile.training.checkpoint import _agree, _raise_first, save_checkpoint

        name = f"step_{step:06d}"
        path = save_checkpoint(model, os.path.join(self.root, name), optimizer=optimizer, extra=extra,
                               overwrite=self.overwrite, run={"run_id": self.run_id, "step": step})
        outcome = None
        if model.rank == 0:  # the pointer moves only after every rank finished writing
            try:
                tmp = os.path.join(self.root, LATEST + ".tmp")
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(name + "\n")
                os.replace(tmp, os.path.join(self.root, LATEST))
            except OSError as exc:
                outcome = files.os_error(exc, os.path.join(self.root, LATEST))
        _raise_first(_agree(model, outcome))
        return path

    def _candidates(self) -> tuple[list[str], list[str]]:
        """(step directories to try, in order, notes): `latest`, then this run's steps, newest first."""
        notes, steps = [], step_dirs(self.root)
        pointer = os.path.join(self.root, LATEST)
        latest = None
        if os.path.isfile(pointer):
            with open(pointer, encoding="utf-8", errors="replace") as fh:
                name = fh.read().strip()
            if _STEP.match(name) and os.path.isdir(os.path.join(self.root, name)):
                latest = name
            else:
                notes.append(f"latest names {name[:40]!r}, which is not a step directory here")
        elif steps:
            notes.append("latest is missing")
        mine = [name for _, name in reversed(steps) if self._belongs(name)]
        if latest is not None:
            number = int(_STEP.match(latest).group(1))
            newer = [n for n in mine if int(_STEP.match(n).group(1)) > number]
            if newer:
                notes.append(f"{', '.join(newer)} {'is' if len(newer) == 1 else 'are'} newer than latest but "
                             "never committed (the run stopped before moving latest): not used")
                mine = [n for n in mine if n not in newer]
        order = ([latest] if latest else []) + [n for n in mine if n != latest]
        return [os.path.join(self.root, n) for n in order], notes

    def _belongs(self, name: str) -> bool:
        """A step of this run (or one whose manifest is unreadable: loading it names the damage)."""
        try:
            manifest = files.read_manifest(os.path.join(self.root, name))
        except CheckpointDamaged:
            return True
        return manifest is not None and manifest.get("run_id") in (None, self.run_id)

    def resume(self, model: Any, optimizer: Any = None) -> tuple[Any, str | None, list[str]]:
        """(extra, the step directory loaded or None, notes): the newest intact checkpoint of this run."""
        from dmt_compile.training.checkpoint import _agree, load_checkpoint

        candidates, notes = _agree(model, self._candidates() if model.rank == 0 else None)[0]
        if not candidates:
            return None, None, notes + [f"{self.root} holds no checkpoint of this run yet: starting at step 0"]
        damaged = []
        for i, path in enumerate(candidates):
            try:
                extra = load_checkpoint(model, path, optimizer=optimizer)
            except CheckpointDamaged as exc:
                damaged.append(exc.problem)
                nxt = os.path.basename(candidates[i + 1]) if i + 1 < len(candidates) else None
                notes.append(f"{exc.problem}" + (f"; falling back to {nxt}" if nxt else ""))
                continue
            return extra, path, notes
        raise CheckpointDamaged(f"no intact checkpoint in {self.root}: " + "; ".join(damaged[:3]),
                                "start a new run (--overwrite) or restore the files")

