"""A checkpoint directory on disk: our marker and manifest, ownership, locks, the atomic commit.

* **Marker and manifest.** Every directory `save_checkpoint` creates holds `dmt_checkpoint.json`
  from its first moment (`complete: false`); when every rank has written, it records each file's
  size and SHA-256 and `complete: true`. A directory is *ours* only with that file: nothing else is
  ever deleted or replaced (a foreign directory is refused, or with `overwrite=True` moved aside).
* **Commit.** Data goes to a fresh sibling `<path>.partial-<token>`; one rename makes it `<path>`.
  Replacing an existing checkpoint of ours swaps the two directories in one atomic
  `renameat2(RENAME_EXCHANGE)` (Linux) and then deletes the old one; where that call is missing,
  two renames through `<path>.old-<token>`, and a reader that finds `<path>` missing names the
  intact previous checkpoint left there.
* **Lock.** `<path>.lock` (`O_CREAT|O_EXCL`: pid, host) keeps a second writer out; a lock whose
  process is dead on this host is stale and taken over.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import uuid
from typing import Any, Callable, Iterable

from dmt_compile.errors import CheckpointDamaged, CheckpointError

__all__ = ["MANIFEST", "FORMAT", "read_manifest", "is_ours", "file_digests", "write_manifest", "verify_files",
           "claim_target", "commit", "remove_ours", "acquire_lock", "lock_holder", "release_lock", "os_error",
           "leftovers", "write_failure"]

FORMAT = "dmt_compile-checkpoint/2"
MANIFEST = "dmt_checkpoint.json"
_CHUNK = 1 << 22


def os_error(exc: OSError, path: str, needed: int | None = None) -> CheckpointError:
    """One typed line for an I/O error: the path, the reason, the bytes the write needed."""
    where = getattr(exc, "filename", None) or path
    need = f"; the checkpoint needs {needed:,} bytes" if needed else ""
    if exc.errno == errno.ENOSPC and needed:
        try:
            need += f", {shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free:,} are free"
        except OSError:
            pass
    return CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc} at {where}{need}",
                           "free space on that file system or choose another directory"
                           if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else
                           "fix the path or its permissions")


def write_failure(path: str, reason: str, needed: int | None) -> CheckpointError:
    """A write that failed without an OSError (torch's zip writer reports a short write as a
    RuntimeError): say what the file system allows, the bytes needed and free."""
    import resource

    parent = os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(parent).free if os.path.isdir(parent) else None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if needed and free is not None and free < needed:
        reason = "no space left on the file system"
    elif limit != resource.RLIM_INFINITY and (not needed or limit < needed):
        reason = f"files are limited to {limit:,} bytes here (ulimit -f)"
    sizes = (f"; the checkpoint needs {needed:,} bytes" if needed else "") + \
        (f", {free:,} are free" if free is not None else "")
    return CheckpointError(f"cannot write checkpoint {path}: {reason}{sizes}",
                           "free space (or raise the limit) on that file system, or choose another directory")


def read_manifest(path: str) -> dict | None:
    """Our manifest of the directory `path`, or None when it has none (not ours)."""
    name = os.path.join(path, MANIFEST)
    if not os.path.isfile(name):
        return None
    try:
        with open(name, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CheckpointDamaged(f"{name} cannot be read ({type(exc).__name__}: {exc})",
                                "point at a complete checkpoint") from None
    if not isinstance(manifest, dict) or not str(manifest.get("format", "")).startswith("dmt_compile-checkpoint"):
        raise CheckpointDamaged(f"{name} is not a dmt_compile manifest", "point at a complete checkpoint")
    return manifest


def is_ours(path: str) -> bool:
    try:
        return os.path.isdir(path) and read_manifest(path) is not None
    except CheckpointDamaged:
        return False


def file_digests(directory: str, names: Iterable[str]) -> dict[str, dict]:
    """{name: {"bytes": size, "sha256": hex}} of files in `directory`."""
    out = {}
    for name in names:
        h, size = hashlib.sha256(), 0
        with open(os.path.join(directory, name), "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
        out[name] = {"bytes": size, "sha256": h.hexdigest()}
    return out


def write_manifest(directory: str, durable: bool = True, **fields: Any) -> None:
    """Write (atomically; `durable`: on disk before it is renamed in) the manifest of `directory`."""
    tmp = os.path.join(directory, MANIFEST + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"format": FORMAT, **fields}, fh, sort_keys=True)
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(directory, MANIFEST))


def verify_files(path: str, files: dict[str, dict], names: Iterable[str],
                 progress: Callable[[int, int, str], None] | None = None) -> list[str]:
    """What is wrong with the files `names` of checkpoint `path` against its manifest (empty: intact);
    `progress(done, total, name)` is called before each file (a `printing.progress.ProgressBar` fits)."""
    problems = []
    names = list(names)
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, len(names), name)
        want, full = files[name], os.path.join(path, name)
        if not os.path.isfile(full):
            problems.append(f"{name} is missing")
            continue
        size = os.path.getsize(full)
        if size != want["bytes"]:
            problems.append(f"{name} has {size:,} bytes, the manifest says {want['bytes']:,} (truncated or replaced)")
        elif file_digests(path, [name])[name]["sha256"] != want["sha256"]:
            problems.append(f"{name} does not match its SHA-256 (damaged)")
    if progress is not None:
        progress(len(names), len(names), "")
    return problems


def leftovers(path: str) -> list[str]:
    """Siblings an interrupted save of `path` left (`<path>.partial-*`, `<path>.old-*`), ours only."""
    parent, base = os.path.split(path)
    if not os.path.isdir(parent):
        return []
    return sorted(os.path.join(parent, n) for n in os.listdir(parent)
                  if n.startswith((base + ".partial-", base + ".old-")) and is_ours(os.path.join(parent, n)))


def remove_ours(path: str) -> bool:
    """Delete the directory `path` if, and only if, it carries our marker."""
    if not is_ours(path):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def claim_target(path: str, overwrite: bool) -> list[str]:
    """Make `path` writable for a new checkpoint (rank 0); returns notes on what was moved aside.

    Ours (a checkpoint, or nothing there, or an empty directory): fine. A file, a run's checkpoint
    root or a non-empty foreign directory: refused, or with `overwrite=True` renamed to
    `<path>.moved-<token>` (never deleted).
    """
    notes: list[str] = []
    if os.path.lexists(path) and not is_ours(path):
        empty = os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
        if empty:
            os.rmdir(path)
        elif not overwrite:
            root = os.path.isfile(os.path.join(path, "dmt_run.json"))
            what = "a run's checkpoint root (it holds dmt_run.json)" if root else \
                "a directory that is not a dmt_compile checkpoint" if os.path.isdir(path) else "a file"
            raise CheckpointError(f"will not write checkpoint {path}: it is {what}, and nothing that is not "
                                  "provably a dmt_compile checkpoint is replaced",
                                  "choose a new or empty path (e.g. <root>/step_N), or pass overwrite=True "
                                  "(--overwrite) to move it aside")
        else:
            aside = f"{path}.moved-{uuid.uuid4().hex[:8]}"
            os.rename(path, aside)
            notes.append(f"moved {path} aside to {aside} (overwrite)")
    for old in leftovers(path):  # a crashed save's siblings: ours, and the lock says nobody writes
        shutil.rmtree(old, ignore_errors=True)
    return notes


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def commit(partial: str, path: str) -> None:
    """Make the complete `partial` the checkpoint `path` (module docstring)."""
    if not os.path.lexists(path):
        os.rename(partial, path)
    elif _exchange(partial, path):
        remove_ours(partial)
    else:
        old = f"{path}.old-{uuid.uuid4().hex[:8]}"
        os.rename(path, old)
        os.rename(partial, path)
        remove_ours(old)


def _holder(lock: str) -> dict:
    try:
        with open(lock, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process cannot be checked from here
    try:
        os.kill(int(holder.get("pid", -1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return True


def lock_holder(lock: str) -> CheckpointError | None:
    """The error a writer would meet at `lock` (held by a live process), or None."""
    if not os.path.exists(lock):
        return None
    holder = _holder(lock)
    if not _alive(holder) or (holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname()):
        return None
    return CheckpointError(f"{os.path.dirname(lock)} is being written by another process (pid "
                           f"{holder.get('pid', '?')} on {holder.get('host', '?')} holds {lock})",
                           "wait for that run to finish, or write elsewhere; delete the lock file only if that "
                           "process is gone")


def acquire_lock(lock: str, what: str) -> str | None:
    """Take the lock file `lock` for writing `what`; a note when a stale lock was taken over."""
    note = None
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(lock)
            if _alive(holder):
                raise CheckpointError(
                    f"{what} is being written by another process (pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} holds {lock})",
                    "wait for that run to finish, or write elsewhere; delete the lock file only if that "
                    "process is gone") from None
            note = f"took over the stale lock {lock} of pid {holder.get('pid', '?')} (no longer running)"
            os.unlink(lock)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump({"pid": os.getpid(), "host": socket.gethostname()}, fh)
        return note
    raise CheckpointError(f"cannot take the lock {lock}", "retry; another process keeps creating it")


def release_lock(lock: str) -> None:
    if _holder(lock).get("pid") == os.getpid():
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
