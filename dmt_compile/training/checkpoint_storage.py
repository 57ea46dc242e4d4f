"""DCP storage for our checkpoints: files hashed as they are written, checked before they are read.

* `HashingWriter` — DCP's `FileSystemWriter` that computes each data file's size and SHA-256 from
  the bytes DCP streams into it (no file is read back to be hashed; the bytes hashed are the bytes
  written, and DCP still fsyncs every file). Two hooks run on the coordinator inside DCP's own
  steps: `prepare` in the global-plan step, before any rank writes (the lock, the target, the free
  space, the partial directory and its marker), and `commit` in the finish step with every rank's
  digests (the manifest and the rename). A failure there, or in any rank's write, reaches every
  rank through DCP's collectives as one `CheckpointException` (`checkpoint_safety.dcp_calls`
  types it): no collective of our own is needed around `dcp.save`.
* `VerifyingReader` — `SafeReader` that reuses the DCP metadata the caller already verified and
  read, and checks this rank's share of the files (size, SHA-256) in DCP's planning step, before
  any rank reads data; a rank that could not open the checkpoint at all raises its own error in
  that step, so every rank raises the same (the first rank's) error and none waits.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from typing import Any, Callable, Iterator

import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.filesystem import FileSystem
from torch.distributed.checkpoint.metadata import Metadata
from torch.futures import Future

from dmt_compile.training.checkpoint_safety import SafeReader

__all__ = ["HashingWriter", "VerifyingReader", "DATA_SUFFIX"]

DATA_SUFFIX = ".distcp"


class _HashingStream:
    """A binary file being written whose SHA-256 and size follow every `write`."""

    def __init__(self, raw: Any, name: str, done: Callable[[str, dict], None]) -> None:
        self._raw, self._name, self._done = raw, name, done
        self._hash, self._size, self._closed = hashlib.sha256(), 0, False

    def write(self, data: Any) -> int:
        written = self._raw.write(data)
        view = memoryview(data).cast("B")
        if written is not None and written != view.nbytes:
            view = view[:written]
        self._hash.update(view)
        self._size += view.nbytes
        return view.nbytes if written is None else written

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._raw.close()
            self._done(self._name, {"bytes": self._size, "sha256": self._hash.hexdigest()})

    def __getattr__(self, name: str) -> Any:  # tell, flush, fileno, ... of the real file
        return getattr(self._raw, name)


class _HashingFileSystem(FileSystem):
    """DCP's local file system; data files (`*.distcp`) opened for writing are hashed as written."""

    def __init__(self, done: Callable[[str, dict], None]) -> None:
        super().__init__()
        self._done = done

    @contextlib.contextmanager
    def create_stream(self, path: Any, mode: str) -> Iterator[Any]:
        name = os.path.basename(str(path))
        if mode != "wb" or not name.endswith(DATA_SUFFIX):
            with super().create_stream(path, mode) as stream:
                yield stream
            return
        with super().create_stream(path, mode) as raw:
            stream = _HashingStream(raw, name, self._done)
            try:
                yield stream
            finally:
                stream.close()


class _Written(list):
    """One rank's DCP write results, with the digests of the files it wrote (sent to the coordinator)."""

    def __init__(self, results: list, digests: dict[str, dict]) -> None:
        super().__init__(results)
        self.digests = digests


class HashingWriter(dcp.FileSystemWriter):
    """`FileSystemWriter` into `path` (module docstring): `prepare()` on the coordinator before any
    rank writes, `commit(digests)` on the coordinator after `.metadata` is written, where `digests`
    is {file name: {"bytes", "sha256"}} of every data file every rank wrote."""

    def __init__(self, path: str, prepare: Callable[[], None], commit: Callable[[dict], None]) -> None:
        super().__init__(path)
        self._prepare, self._commit = prepare, commit
        self._digests: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.fs = _HashingFileSystem(self._record)

    def _record(self, name: str, digest: dict) -> None:
        with self._lock:
            self._digests[name] = digest

    def prepare_local_plan(self, plan: Any) -> Any:
        return plan  # the coordinator creates the directory in `prepare` (DCP's mkdir on every rank would race it)

    def prepare_global_plan(self, plans: list) -> list:
        self._prepare()
        return super().prepare_global_plan(plans)

    def write_data(self, plan: Any, planner: Any) -> Future:
        written = super().write_data(plan, planner)
        written.wait()
        out: Future = Future()
        out.set_result(_Written(written.value(), dict(self._digests)))
        return out

    def finish(self, metadata: Metadata, results: list) -> None:
        super().finish(metadata, results)
        digests: dict[str, dict] = {}
        for rank_results in results:
            digests.update(getattr(rank_results, "digests", {}))
        self._commit(digests)


class VerifyingReader(SafeReader):
    """`SafeReader` over `path` that returns `metadata` (already verified and read) and, in DCP's
    planning step, verifies `names` with `verify(names)` or raises `problem` (module docstring)."""

    def __init__(self, path: str, metadata: Any = None, verify: Callable[[], None] | None = None,
                 problem: BaseException | None = None) -> None:
        super().__init__(path)
        self._metadata, self._verify, self._problem = metadata, verify, problem

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        if self._problem is not None:
            return Metadata(state_dict_metadata={})  # the error is raised in set_up_storage_reader
        if self._metadata is None:
            self._metadata = super().read_metadata(*args, **kwargs)
        if self._metadata.storage_meta is not None:
            self._metadata.storage_meta.load_id = self.load_id
        return self._metadata

    def set_up_storage_reader(self, metadata: Any, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        if self._problem is not None:
            raise self._problem
        if self._verify is not None:
            self._verify()
        super().set_up_storage_reader(metadata, is_coordinator, *args, **kwargs)
