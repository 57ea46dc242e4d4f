"""Distributed checkpoints of a `DistributedDmt` with `torch.distributed.checkpoint` (DCP).

One DCP checkpoint per directory, keyed by the model's state names (the original model's names,
`dmt.*` for added modules; `checkpoint_layout`), so it does not depend on the topology:

* `model/<key>` — each table written once, by its owner; a table sharded by rows inside a host
  as a `ShardedTensor` of its row shards; dense and Tower-Module tensors once (DCP writes a
  tensor that several ranks hold from one of them).
* `optim/<key>/<state>` — optimizer state (SGD momentum, Adagrad sums, Adam moments and steps...):
  tensors shaped like their parameter are placed like it (owner, row shards, replicas), the rest
  written once; `optim_groups` holds the hyper-parameters of each param group (plain data).
* `rng/<rank>` — each rank's RNG state.
* `dmt_checkpoint.json` (ours, JSON): the marker, `meta` (topology, keys, shapes, the original
  model's keys, the optimizer's class), `extra` (plain JSON data: the step, the data position...)
  and every file's size and SHA-256.

Loading reads what this rank needs from whatever ranks wrote it (DCP resharding), so a
checkpoint written on 2x2 loads on 1x4, 1x1 or 2x4 with bitwise-equal tensors. Loading runs no
code from the files (`checkpoint_safety`) and verifies the checksums first, spread over the
ranks. Saving writes a fresh sibling and commits it with one rename (`checkpoint_files`); it
replaces only what carries our marker.
"""
from __future__ import annotations

import io
import json
import os
import uuid
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from dmt_compile.errors import CheckpointDamaged, CheckpointError
from dmt_compile.training import checkpoint_files as files
from dmt_compile.training.checkpoint_layout import Entry
from dmt_compile.training.checkpoint_read import (MODEL, OPTIM, flat_state_from_checkpoint, locate, open_manifest,
                                                  read_checkpoint, read_meta, read_metadata, verify)
from dmt_compile.training.checkpoint_safety import METADATA, SafeLoadPlanner, dcp_calls, quiet, safe_torch_load
from dmt_compile.training.checkpoint_storage import HashingWriter, VerifyingReader
from dmt_compile.runtime.row_wise import row_starts

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "read_meta", "flat_state_from_checkpoint",
           "FORMAT"]

FORMAT = files.FORMAT


def _row_sharded(model: Any, e: Entry, local: torch.Tensor) -> Any:
    """`local` (rows [e.start, e.stop) of table e.key) as a ShardedTensor over the host's ranks."""
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor
    from torch.distributed._shard.sharded_tensor.metadata import ShardedTensorMetadata, TensorProperties

    shape = model.layout.shapes[e.key]
    members = model.topology.intra_group(model.rank)
    starts = row_starts(shape[0], len(members))
    me = members.index(model.rank)
    if (starts[me], starts[me + 1]) != (e.start, e.stop):
        raise CheckpointError(
            f"row shard [{e.start}, {e.stop}) of {e.key} is not this rank's share {starts[me:me + 2]}",
            "report this as a bug")
    metas = [ShardMetadata([starts[j]] + [0] * (len(shape) - 1), [starts[j + 1] - starts[j], *shape[1:]],
                           f"rank:{r}/{local.device if r == model.rank else 'cpu'}") for j, r in enumerate(members)]
    global_meta = ShardedTensorMetadata(metas, torch.Size(shape), TensorProperties(dtype=local.dtype))
    with quiet():
        return ShardedTensor._init_from_local_shards_and_global_metadata([Shard(local, metas[me])], global_meta)


def _placed(model: Any, e: Entry, tensor: torch.Tensor) -> Any:
    return _row_sharded(model, e, tensor) if e.kind == "rows" else tensor


def _meta(model: Any, optimizer: Any) -> dict:
    lay = model.layout
    return {
        "topology": f"{model.topology.num_hosts}x{model.topology.local_size}",
        "world_size": model.topology.world_size, "keys": list(lay.keys), "shapes": {k: list(v) for k, v in
                                                                                    lay.shapes.items()},
        "dtypes": lay.dtypes, "original": list(lay.original), "rebuilt": list(lay.rebuilt), "split": lay.split or {},
        "optimizer": type(optimizer).__name__ if optimizer is not None else None,
    }


def _entry_of(model: Any, p: torch.Tensor) -> Any:
    """The state entry of a parameter the optimizer holds; a typed error for a foreign tensor."""
    e = model.layout.entry_of(p)
    if e is None:
        raise CheckpointError(f"the optimizer holds a tensor of shape {tuple(p.shape)} that is not a "
                              "parameter of the distributed model", "build the optimizer from dist_model.parameters()")
    return e


def _plain(value: Any, what: str) -> bytes:
    """`value` as `torch.save` bytes (one DCP record, not flattened) if `torch.load(weights_only=True)`
    reads it back (plain data, tensors); else a typed error."""
    buf = io.BytesIO()
    try:
        torch.save(value, buf)
        buf.seek(0)
        safe_torch_load(buf, what)
    except CheckpointError:
        raise CheckpointError(f"{what} holds objects other than plain data and tensors ({type(value).__name__})",
                              "keep numbers, strings, lists, dicts and tensors there") from None
    except Exception as exc:  # noqa: BLE001 - whatever torch.save refuses
        raise CheckpointError(f"{what} cannot be saved ({type(exc).__name__}: {exc})",
                              "keep numbers, strings, lists, dicts and tensors there") from None
    return buf.getvalue()


def _unwrap(value: Any, what: str) -> Any:
    return safe_torch_load(io.BytesIO(value), what) if isinstance(value, bytes) else value


def _optimizer_entries(model: Any, optimizer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    groups = []
    for group in optimizer.param_groups:
        groups.append({k: v for k, v in group.items() if k != "params"})
        for p in group["params"]:
            e = _entry_of(model, p)
            for name, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    out[f"{OPTIM}{e.key}/{name}"] = _placed(model, e, value.detach())
                elif isinstance(value, torch.Tensor):
                    out[f"{OPTIM}{e.key}/{name}"] = value.detach()
                else:
                    out[f"{OPTIM}{e.key}/{name}"] = _plain(value, f"optimizer state {name!r}")
    out["optim_groups"] = _plain(groups, "the optimizer's param groups")
    return out


def _plain_extra(extra: Any) -> Any:
    """`extra` as JSON data (what is read back), or a typed error."""
    try:
        return json.loads(json.dumps(extra, allow_nan=True))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"extra= must be plain data (JSON: numbers, strings, lists, dicts): {exc}",
                              "store the step, positions and names; save objects with their own state_dict()") from None


def _check_complete(model: Any, held: list[list[str]]) -> None:
    """Every key of the model is held by some rank (else the checkpoint could not be loaded anywhere)."""
    every = set().union(*held)
    missing = [k for k in model.layout.keys if k not in every]
    if missing:
        raise CheckpointError(f"no rank holds {missing}; the checkpoint would be incomplete", "report this as a bug")


def _agree(model: Any, value: Any) -> list[Any]:
    """Every rank's `value` (one all_gather_object)."""
    every: list[Any] = [None] * model.topology.world_size
    dist.all_gather_object(every, value, group=model.groups.world)
    return every


def _raise_first(every: list[Any]) -> None:
    """Raise, on every rank alike, the first error any rank reported."""
    for item in every:
        if isinstance(item, BaseException):
            raise item


def _nbytes(model: Any, state: dict[str, Any]) -> int:
    """The bytes this rank will write (a replicated tensor counted on rank 0 only: DCP writes it once)."""
    kinds = {e.key: e.kind for e in model.layout.entries}
    total = 0
    for k, v in state.items():
        key = k[len(MODEL):] if k.startswith(MODEL) else k[len(OPTIM):].rpartition("/")[0] if k.startswith(OPTIM) \
            else None
        if model.rank != 0 and kinds.get(key) == "replicated":
            continue
        t = v.local_shards()[0].tensor if hasattr(v, "local_shards") else v
        total += t.numel() * t.element_size() if isinstance(t, torch.Tensor) else len(v) if isinstance(v, bytes) else 0
    return total


def _build_state(model: Any, optimizer: Any) -> dict[str, Any]:
    state: dict[str, Any] = {MODEL + e.key: _placed(model, e, e.tensor.detach()) for e in model.layout.entries}
    if optimizer is not None:
        state.update(_optimizer_entries(model, optimizer))
    state[f"rng/{model.rank}"] = torch.get_rng_state()
    return state


def _prepare(path: str, partial: str, overwrite: bool, needed: int) -> None:
    """Rank 0, in DCP's planning step (before any rank writes): lock `path`, clear the way
    (`claim_target`), check the space, create `partial` with our marker."""
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        files.acquire_lock(path + ".lock", f"checkpoint {path}")
        try:
            files.claim_target(path, overwrite)
            free = files.shutil.disk_usage(parent).free
            if free < needed:
                raise CheckpointError(f"cannot write checkpoint {path}: it needs about {needed:,} bytes and "
                                      f"{free:,} are free there", "free space on that file system or choose another "
                                                                  "directory")
            os.makedirs(partial)
            files.write_manifest(partial, durable=False, complete=False)  # the marker
        except BaseException:
            files.release_lock(path + ".lock")
            raise
    except OSError as exc:
        raise files.os_error(exc, path, needed) from None


def _commit(partial: str, path: str, digests: dict[str, dict], manifest: dict) -> None:
    """Rank 0, in DCP's finish step: the manifest (every file with the size and SHA-256 hashed while
    it was written; `.metadata` and anything else found there hashed now), then the rename."""
    try:
        on_disk = [n for n in os.listdir(partial) if not n.startswith(files.MANIFEST)]
        known = {n: digests[n] for n in on_disk if n in digests}
        known.update(files.file_digests(partial, [n for n in on_disk if n not in known]))
        files.write_manifest(partial, durable=False, complete=True, files=known, **manifest)
        files.commit(partial, path)
    except OSError as exc:
        raise files.os_error(exc, path) from None


def save_checkpoint(model: Any, path: str, optimizer: torch.optim.Optimizer | None = None, extra: Any = None,
                    overwrite: bool = False, run: dict | None = None) -> str:
    """Write `model` (and `optimizer`, and plain-data `extra`) to the directory `path` (collective).

    `path` may not exist, be empty or be one of our checkpoints (replaced atomically); anything else
    is refused unless `overwrite=True`, which moves it aside. `run` (the run id and step) goes into
    the manifest. Every rank raises the same `CheckpointError` when any rank cannot go on: ours
    through one `all_gather_object` before DCP, the target's and the writes' through DCP's own steps
    (`checkpoint_storage.HashingWriter`).
    """
    path = os.path.abspath(path)
    try:
        state, extra = _build_state(model, optimizer), _plain_extra(extra)
        local: Any = _nbytes(model, state)
    except CheckpointError as exc:
        local = exc
    token = uuid.uuid4().hex[:8] if model.rank == 0 else None
    every = _agree(model, (sorted({e.key for e in model.layout.entries}), local, token))
    _raise_first([b for _, b, _ in every])
    _check_complete(model, [keys for keys, _, _ in every])
    needed, partial = sum(b for _, b, _ in every), f"{path}.partial-{every[0][2]}"
    writer = HashingWriter(partial, prepare=lambda: _prepare(path, partial, overwrite, needed),
                           commit=lambda digests: _commit(partial, path, digests, {
                               "meta": _meta(model, optimizer), "extra": extra, **(run or {})}))
    try:
        with dcp_calls(path, writing=True, needed=needed):
            dcp.save(state, storage_writer=writer, process_group=model.groups.world)
    finally:
        if model.rank == 0:
            if os.path.isdir(partial):
                files.remove_ours(partial)
            files.release_lock(path + ".lock")
    return path


def _check_compatible(layout: Any, meta: dict, strict: bool, path: str) -> None:
    mine, theirs = set(layout.keys), set(meta["keys"])
    shapes = [f"{k} {list(layout.shapes[k])} vs {meta['shapes'][k]}" for k in layout.keys
              if k in theirs and list(layout.shapes[k]) != list(meta["shapes"][k])]
    missing, unexpected = sorted(mine - theirs), sorted(theirs - mine)
    if shapes or (strict and (missing or unexpected)):
        parts = ([f"shapes differ: {'; '.join(shapes)}"] if shapes else []) + \
            ([f"missing from the checkpoint: {missing}"] if missing and strict else []) + \
            ([f"not in this model: {unexpected}"] if unexpected and strict else [])
        raise CheckpointError(
            f"checkpoint {path!r} (written on {meta['topology']}) does not fit this model: " + "; ".join(parts),
            "transform with the same tower module, compression and towers as the run that wrote it"
            + ("" if shapes else ", or load with strict=False to take the keys both have"))


def _check_optimizer(meta: dict, optimizer: Any, path: str) -> None:
    saved = meta.get("optimizer")
    if saved is None:
        raise CheckpointError(f"checkpoint {path!r} holds no optimizer state",
                              "load it without optimizer=, or save with optimizer=")
    if saved != type(optimizer).__name__:
        raise CheckpointError(f"checkpoint {path!r} holds {saved} state, but this run's optimizer is "
                              f"{type(optimizer).__name__}", f"resume with the optimizer the run was saved with "
                                                             f"({saved}), or load without optimizer=")


def _optimizer_templates(model: Any, optimizer: Any, md: Any) -> tuple[dict[str, Any], dict[int, dict[str, str]]]:
    """(DCP entries to fill, {id(param): {state name: entry key}}) for this rank's optimizer state."""
    state: dict[str, Any] = {}
    where: dict[int, dict[str, str]] = {}
    by_key: dict[str, list[str]] = {}
    for k in md.state_dict_metadata:
        if k.startswith(OPTIM):
            key, _, name = k[len(OPTIM):].rpartition("/")
            by_key.setdefault(key, []).append(name)
    for group in optimizer.param_groups:
        for p in group["params"]:
            e = _entry_of(model, p)
            for name in by_key.get(e.key, []):
                k = f"{OPTIM}{e.key}/{name}"
                m = md.state_dict_metadata[k]
                if isinstance(m, TensorStorageMetadata):
                    like = tuple(m.size) == tuple(model.layout.shapes[e.key])
                    t = torch.empty(p.shape if like else tuple(m.size), dtype=m.properties.dtype, device=p.device)
                    state[k] = _placed(model, e, t) if like else t
                else:
                    state[k] = None
                where.setdefault(id(p), {})[name] = k
    return state, where


def _local(value: Any) -> Any:
    return value.local_shards()[0].tensor if hasattr(value, "local_shards") else value


def _load_optimizer(optimizer: Any, state: dict[str, Any], where: dict[int, dict[str, str]]) -> None:
    groups = _unwrap(state["optim_groups"], "the checkpoint's optimizer param groups")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise CheckpointError(f"the checkpoint's optimizer has {len(groups) if isinstance(groups, list) else '?'} "
                              f"param groups, this one {len(optimizer.param_groups)}",
                              "build the optimizer the way the saving run did")
    index, out_state, out_groups = 0, {}, []
    for saved, group in zip(groups, optimizer.param_groups):
        missing = sorted(set(group) - set(saved) - {"params"})
        if missing:
            raise CheckpointError(f"the checkpoint's param groups lack {missing} of this optimizer",
                                  "resume with the optimizer (class and options) the run was saved with")
        ids = []
        for p in group["params"]:
            if id(p) in where:
                out_state[index] = {name: _unwrap(_local(state[k]), k) for name, k in where[id(p)].items()}
            ids.append(index)
            index += 1
        out_groups.append({**saved, "params": ids})
    optimizer.load_state_dict({"state": out_state, "param_groups": out_groups})


def _opened(model: Any, path: str, optimizer: Any, strict: bool) -> tuple[str, dict, Any, dict, dict]:
    """This rank's view of the checkpoint at `path` before DCP: (its directory, manifest, DCP metadata
    (`.metadata` checked first), the entries to fill, where the optimizer's go); typed errors."""
    path, _ = locate(path)
    manifest = open_manifest(path)
    md = read_metadata(path, manifest)
    meta = manifest["meta"]
    _check_compatible(model.layout, meta, strict, path)
    if optimizer is not None:
        _check_optimizer(meta, optimizer, path)
    state: dict[str, Any] = {MODEL + e.key: _placed(model, e, e.tensor.detach()) for e in model.layout.entries
                             if MODEL + e.key in md.state_dict_metadata}
    where: dict[int, dict[str, str]] = {}
    if optimizer is not None:
        opt_state, where = _optimizer_templates(model, optimizer, md)
        state.update(opt_state)
        state["optim_groups"] = None
    rng = f"rng/{model.rank}"
    if meta["world_size"] == model.topology.world_size and rng in md.state_dict_metadata:
        state[rng] = torch.get_rng_state()
    return path, manifest, md, state, where


def load_checkpoint(model: Any, path: str, optimizer: torch.optim.Optimizer | None = None, strict: bool = True) -> Any:
    """Load `path` (a checkpoint, or a run's root: its `latest`) into `model` (and `optimizer`) in
    place; returns the saved `extra` (collective).

    Every file is checked (size, SHA-256) before any rank reads data: `.metadata` by every rank
    before it is parsed, the others spread over the ranks (`files[rank::world]`) in DCP's planning
    step (`checkpoint_storage.VerifyingReader`). Damage, or any rank's failure to open the
    checkpoint, raises the same typed error on every rank before anything is loaded."""
    manifest: Any = None
    md = problem = None
    state: dict[str, Any] = {}
    where: dict[int, dict[str, str]] = {}
    try:
        path, manifest, md, state, where = _opened(model, path, optimizer, strict)
    except CheckpointError as exc:
        problem, state = exc, {}

    def verify_share() -> None:
        names = sorted(n for n in manifest["files"] if n != METADATA)
        verify(path, manifest, names[model.rank::model.topology.world_size])

    reader = VerifyingReader(path, md, verify_share, problem)
    with dcp_calls(path):
        dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner(), process_group=model.groups.world)
    if optimizer is not None:
        _load_optimizer(optimizer, state, where)
    rng = f"rng/{model.rank}"
    if rng in state:
        torch.set_rng_state(state[rng])
    return manifest.get("extra")
