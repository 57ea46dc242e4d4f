"""Reading a checkpoint in one process: find it, check it, read it, convert it.

Every read goes the same way: `locate` (a run's root follows its `latest` pointer), `open_manifest`
(our JSON manifest: written by dmt_compile, complete), `verify` (sizes and SHA-256 of the files,
`.metadata` always before DCP parses it), then DCP through the safe reader and planner
(`checkpoint_safety`). Conversions: `flat_state_from_checkpoint` (the original model's
`state_dict`, refused when the trained function needs modules the compiler added) and
`dmt_state_from_checkpoint` (the whole `DmtModel` state, topology-free).
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from dmt_compile.errors import CheckpointDamaged, CheckpointError
from dmt_compile.training.checkpoint_files import FORMAT, MANIFEST, leftovers, read_manifest, verify_files
from dmt_compile.training.checkpoint_safety import METADATA, SafeLoadPlanner, SafeReader, dcp_calls
from dmt_compile.training.checkpoint_storage import VerifyingReader

__all__ = ["locate", "open_manifest", "verify", "read_metadata", "read_meta", "read_checkpoint",
           "flat_state_from_checkpoint", "dmt_state_from_checkpoint", "added_modules", "MODEL", "OPTIM"]

MODEL, OPTIM = "model/", "optim/"
RUN_FILE, LATEST = "dmt_run.json", "latest"


def locate(path: str) -> tuple[str, str | None]:
    """(the checkpoint directory, a note) for `path`: a checkpoint, or a run's root (its `latest`)."""
    path = os.path.abspath(path)
    pointer = os.path.join(path, LATEST)
    if os.path.isdir(path) and os.path.isfile(pointer) and not os.path.isfile(os.path.join(path, MANIFEST)):
        with open(pointer, encoding="utf-8", errors="replace") as fh:
            name = fh.read().strip()
        if not name or os.sep in name or name in (".", ".."):
            raise CheckpointDamaged(f"{pointer} does not name a checkpoint ({name[:60]!r})",
                                    "resume with --resume (it falls back to the newest intact step) or pass "
                                    "a step directory")
        return os.path.join(path, name), f"{path} is a run's checkpoint root; its latest is {name}"
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        steps = sorted((n for n in os.listdir(path) if n.startswith("step_")), key=lambda n: (len(n), n))
        raise CheckpointDamaged(f"{path} is a run's checkpoint root without a latest pointer "
                                f"(steps: {', '.join(steps[-3:]) or 'none'})",
                                "pass one of its step directories, or resume the run with --resume")
    return path, None


def open_manifest(path: str) -> dict:
    """The manifest of the complete checkpoint `path`; typed errors for everything else."""
    if not os.path.isdir(path):
        left = leftovers(path)
        old = [p for p in left if ".old-" in os.path.basename(p)]
        if old:
            raise CheckpointDamaged(f"checkpoint {path} is missing: a save that replaced it stopped between its "
                                    f"two renames; the previous checkpoint is intact at {old[0]}",
                                    f"rename {old[0]} to {path}")
        hint = f" (an interrupted save left {left[0]})" if left else ""
        what = "is a file" if os.path.exists(path) else "does not exist"
        raise CheckpointDamaged(f"checkpoint {path} {what}{hint}", "point at a directory written by save_checkpoint")
    manifest = read_manifest(path)
    if manifest is None:
        foreign = os.path.isfile(os.path.join(path, METADATA))
        raise CheckpointError(
            f"{path} is not a dmt_compile checkpoint: " + (
                f"a DCP checkpoint without {MANIFEST} (written by another program, or by a dmt_compile "
                "before checksums; it is not read: DCP metadata is a pickle)" if foreign else f"no {MANIFEST}"),
            "point at a directory written by save_checkpoint")
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT!r}",
                              "write it with this version of dmt_compile")
    if not manifest.get("complete"):
        raise CheckpointDamaged(f"checkpoint {path} is incomplete (its save was interrupted)",
                                "point at a complete checkpoint")
    if not isinstance(manifest.get("files"), dict) or METADATA not in manifest["files"]:
        raise CheckpointDamaged(f"{path}/{MANIFEST} lists no {METADATA}", "point at a complete checkpoint")
    return manifest


def verify(path: str, manifest: dict, names: Any = None, progress: Any = None) -> None:
    """Sizes and SHA-256 of `names` (default: every file) against the manifest; `CheckpointDamaged`.
    `progress(done, total, name)`: called per file (`verify_files`)."""
    problems = verify_files(path, manifest["files"], sorted(manifest["files"]) if names is None else names,
                            progress)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CheckpointDamaged(f"checkpoint {path} is damaged: {'; '.join(problems[:3])}{more}",
                                "resume from another step, or save again")


def read_metadata(path: str, manifest: dict) -> Any:
    """DCP's metadata, after its checksum matched and through the restricted unpickler."""
    verify(path, manifest, [METADATA])
    with dcp_calls(path):
        return SafeReader(path).read_metadata()


def read_meta(path: str, verify_all: bool = False) -> dict:
    """The checkpoint's `meta` record (topology, keys, shapes, optimizer...); no collectives."""
    path, _ = locate(path)
    manifest = open_manifest(path)
    verify(path, manifest, None if verify_all else [METADATA])
    return manifest["meta"]


def read_checkpoint(path: str) -> tuple[dict, dict[str, Any]]:
    """(meta, every entry as a full tensor or plain object) in one process, every file verified."""
    path, _ = locate(path)
    manifest = open_manifest(path)
    verify(path, manifest)
    md = read_metadata(path, manifest)
    state: dict[str, Any] = {}
    for k, m in md.state_dict_metadata.items():
        state[k] = torch.empty(tuple(m.size), dtype=m.properties.dtype) if isinstance(m, TensorStorageMetadata) \
            else None
    with dcp_calls(path):
        dcp.load(state, storage_reader=VerifyingReader(path, md), planner=SafeLoadPlanner(), no_dist=True)
    state["extra"] = manifest.get("extra")
    return manifest["meta"], state


def _piece_owner(meta: dict) -> dict[str, str]:
    return {key: table for table, split in meta.get("split", {}).items() for key, *_ in split["pieces"]}


def added_modules(meta: dict) -> list[str]:
    """The modules the compiler added (Tower Modules, decoders, rebuilt layers), each once."""
    pieces = _piece_owner(meta)
    original = set(meta["original"])
    return sorted({k.rpartition(".")[0] or k for k in meta["keys"] if k not in original and k not in pieces})


def _whole_tables(meta: dict, state: dict[str, Any]) -> None:
    for table, split in meta.get("split", {}).items():  # tables split per field: their pieces, whole again
        first = state[MODEL + split["pieces"][0][0]]
        whole = first.new_zeros((split["rows"], *first.shape[1:]))
        for key, start, stop, step in split["pieces"]:
            whole[start:stop:step] = state[MODEL + key]
        state[MODEL + table] = whole


def flat_state_from_checkpoint(path: str, strict: bool = True) -> dict[str, torch.Tensor]:
    """The original model's `state_dict` (its keys, its order) from a distributed checkpoint.

    Refused (strict) when the trained function needs modules the compiler added or layers it
    rebuilt: the flat model with these tensors would compute another function.
    """
    meta, state = read_checkpoint(path)
    added = added_modules(meta)
    if strict and (added or meta["rebuilt"]):
        what = (f"modules the compiler added ({', '.join(added)})" if added else "") + \
            (" and " if added and meta["rebuilt"] else "") + \
            (f"rebuilt layers (original tensors {', '.join(meta['rebuilt'])})" if meta["rebuilt"] else "")
        raise CheckpointError(
            f"the trained model needs {what}: the flat model would compute another function",
            "export the whole DMT state instead (dmt-compile checkpoint DIR --to-dmt out.pt; "
            "dmt.load_state_dict(torch.load(out.pt))), or take the original tensors only with --partial "
            "(flat_state_from_checkpoint(..., strict=False))")
    _whole_tables(meta, state)
    return {k: state[MODEL + k] for k in meta["original"] if MODEL + k in state}


def dmt_state_from_checkpoint(path: str) -> dict[str, torch.Tensor]:
    """The whole `DmtModel.state_dict()` (original names, `dmt.*` added modules) from a checkpoint:
    `dmt.load_state_dict(sd)` on the same model transformed the same way, on any topology."""
    meta, state = read_checkpoint(path)
    _whole_tables(meta, state)
    pieces, out = _piece_owner(meta), {}
    for key in meta["keys"]:
        name = pieces.get(key, key)
        if name not in out:
            out[name] = state[MODEL + name]
    return out
