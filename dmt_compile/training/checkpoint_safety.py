"""Reading a DCP checkpoint without running code from it.

`torch.distributed.checkpoint` (DCP) reads a checkpoint's `.metadata` with `pickle.load` and every
non-tensor record with `torch.load(weights_only=False)`: a crafted checkpoint runs whatever its
author wants as soon as it is loaded, even only inspected (see the warning on `pickle` in the
Python documentation). What we read instead:

* `.metadata` through `MetadataUnpickler`, which resolves only the classes DCP's own metadata is
  made of (`torch.distributed.checkpoint.metadata.*`, `_StorageInfo`, `torch.Size`, dtypes,
  layouts, memory formats, `pathlib` paths); anything else (`os.system`, `builtins.eval`, ...) is
  a `CheckpointError` before it is called;
* non-tensor records through `torch.load(weights_only=True)` (`SafeLoadPlanner`): plain data and
  tensors only; tensors themselves DCP already reads with `weights_only=True`.

`dcp_calls(path)` wraps every call into DCP: the warnings DCP prints on every call that we
understand (single-process loads, the ShardedTensor deprecation) are filtered there, narrowly,
unless logging is at INFO or finer (`-v`), and DCP's exceptions become one typed line.
"""
from __future__ import annotations

import contextlib
import io
import logging
import pathlib
import pickle
import warnings
from typing import Any, Iterator

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

from dmt_compile.errors import CheckpointDamaged, CheckpointError
from dmt_compile.training.checkpoint_files import os_error, write_failure

__all__ = ["MetadataUnpickler", "SafeReader", "SafeLoadPlanner", "dcp_calls", "quiet", "safe_torch_load", "METADATA"]

METADATA = ".metadata"
_DCP_CLASSES = {
    "torch.distributed.checkpoint.metadata": {"Metadata", "TensorStorageMetadata", "BytesStorageMetadata",
                                              "ChunkStorageMetadata", "TensorProperties", "MetadataIndex",
                                              "StorageMeta", "_MEM_FORMAT_ENCODING"},
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.distributed.checkpoint.planner": {"WriteItemType", "LoadItemType"},
    "torch.serialization": {"_get_layout"},
    "torch": {"Size"},
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"},
    "pathlib._local": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"},
    "collections": {"OrderedDict"},
}


class MetadataUnpickler(pickle.Unpickler):
    """An unpickler that builds DCP metadata and nothing else (module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _DCP_CLASSES.get(module, ()):
            return getattr(pathlib, name) if module.startswith("pathlib") else super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.layout,
                                                                          torch.memory_format)):
            return getattr(torch, name)
        raise CheckpointError(f"the checkpoint's {METADATA} asks for {module}.{name}, which is not part of DCP "
                              "metadata (a crafted or foreign file; nothing from it was run)",
                              "load only checkpoints written by dmt_compile's save_checkpoint")


class SafeReader(dcp.FileSystemReader):
    """DCP's file reader with `.metadata` read by `MetadataUnpickler`."""

    def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
        path = self._get_metadata_path(kwargs.get("rank"))
        with self.fs.create_stream(path, "rb") as fh:
            try:
                metadata = MetadataUnpickler(fh).load()
            except CheckpointError:
                raise
            except Exception as exc:  # noqa: BLE001 - any unreadable metadata is one typed line
                raise CheckpointDamaged(f"{path}: the DCP {METADATA} file cannot be read "
                                        f"({type(exc).__name__}: {exc})", "point at a complete checkpoint") from None
        if type(metadata).__name__ != "Metadata":
            raise CheckpointDamaged(f"{path} holds a {type(metadata).__name__}, not DCP metadata",
                                    "point at a complete checkpoint")
        if getattr(metadata, "storage_meta", None) is None:
            from torch.distributed.checkpoint.metadata import StorageMeta
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


def safe_torch_load(data: Any, what: str) -> Any:
    """`torch.load(weights_only=True)`, refusing anything else with a typed error."""
    try:
        return torch.load(data, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{what} is not plain data or tensors ({first[:200]}); nothing from it was run",
                              "load only checkpoints written by dmt_compile's save_checkpoint") from None


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's load planner with non-tensor records read by `torch.load(weights_only=True)`."""

    def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
        fqn = read_item.dest_index.fqn
        obj = safe_torch_load(value, f"the checkpoint's record {fqn!r}")
        if self.flatten_state_dict:
            from torch.distributed.checkpoint._traverse import set_element
            set_element(self.original_state_dict, self.mappings[fqn], obj)
        else:
            self.state_dict[fqn] = obj


_QUIET = (
    (UserWarning, r"torch\.distributed is (disabled, )?unavailable or uninitialized"),
    (FutureWarning, r"Please use DTensor instead and we are deprecating ShardedTensor"),
)


def _is_verbose() -> bool:
    return logging.getLogger("dmt_compile").isEnabledFor(logging.INFO)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The DCP / ShardedTensor warnings we understand, filtered (unless logging is at INFO: -v)."""
    with warnings.catch_warnings():
        if not _is_verbose():
            for category, message in _QUIET:
                warnings.filterwarnings("ignore", message=message, category=category)
        yield


@contextlib.contextmanager
def dcp_calls(path: str, writing: bool = False, needed: int | None = None) -> Iterator[None]:
    """Around a call into DCP: the warnings we understand filtered (unless -v); DCP's errors typed."""
    from torch.distributed.checkpoint.api import CheckpointException  # a BaseException, not an Exception

    with quiet():
        try:
            yield
        except CheckpointError:
            raise
        except (Exception, CheckpointException) as exc:  # noqa: BLE001 - DCP's own failures, one line each
            raise _typed(exc, path, writing, needed) from None


def _typed(exc: BaseException, path: str, writing: bool, needed: int | None) -> CheckpointError:
    """One typed line for a DCP failure (DCP wraps each rank's failure in a CheckpointException)."""
    from torch.distributed.checkpoint.api import CheckpointException

    causes = [f[0] if isinstance(f, tuple) else f for f in exc.failures.values()] \
        if isinstance(exc, CheckpointException) else [exc]
    first = next((c for c in causes if isinstance(c, CheckpointError)), None)
    if first is not None:
        return first
    cause = causes[0] if causes else exc
    if isinstance(cause, OSError) and writing:
        return os_error(cause, path, needed)
    text = f"{type(cause).__name__}: {str(cause).strip().splitlines()[0] if str(cause).strip() else ''}"[:300]
    if writing:
        return write_failure(path, text, needed)
    return CheckpointDamaged(f"checkpoint {path} cannot be read: {text}",
                             "point at a complete checkpoint written by save_checkpoint")
