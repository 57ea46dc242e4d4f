"""Distributed checkpoints of a `DistributedDmt` with `torch.distributed.checkpoint` (DCP).

One DCP checkpoint per directory, keyed by the model's state names (the original model's names,
`dmt.*` for added modules; `checkpoint_layout`), so it does not depend on the topology:

* `model/<key>` — each table written once, by its owner; a table sharded by rows inside a host
  as a `ShardedTensor` of its row shards; dense and Tower-Module tensors once (DCP writes a
  tensor that several ranks hold from one of them).
* `optim/<key>/<state>` — optimizer state (SGD momentum, Adagrad sums, Adam moments and steps...):
  tensors shaped like their parameter are placed like it (owner, row shards, replicas), the rest
  written once; `optim_groups` holds the hyper-parameters of each param group.
* `meta` (JSON: format, topology, keys, shapes, the original model's keys), `rng/<rank>`, `extra`
  (any picklable object, e.g. the step and the data loader's position).

Loading reads what this rank needs from whatever ranks wrote it (DCP resharding), so a
checkpoint written on 2x2 loads on 1x4, 1x1 or 2x4 with bitwise-equal tensors. A save goes to
`<dir>.partial` and is renamed into place only when every rank finished: an interrupted save
never leaves a half-written checkpoint under `<dir>`.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from dmt_compile.errors import CheckpointError
from dmt_compile.training.checkpoint_layout import Entry
from dmt_compile.runtime.row_wise import row_starts

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint", "read_meta", "flat_state_from_checkpoint",
           "FORMAT"]

FORMAT = "dmt_compile-checkpoint/1"
MODEL, OPTIM = "model/", "optim/"


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
    return ShardedTensor._init_from_local_shards_and_global_metadata([Shard(local, metas[me])], global_meta)


def _placed(model: Any, e: Entry, tensor: torch.Tensor) -> Any:
    return _row_sharded(model, e, tensor) if e.kind == "rows" else tensor


def _meta(model: Any, optimizer: Any) -> str:
    lay = model.layout
    return json.dumps({
        "format": FORMAT, "topology": f"{model.topology.num_hosts}x{model.topology.local_size}",
        "world_size": model.topology.world_size, "keys": list(lay.keys), "shapes": lay.shapes, "dtypes": lay.dtypes,
        "original": list(lay.original), "rebuilt": list(lay.rebuilt), "split": lay.split or {},
        "optimizer": type(optimizer).__name__ if optimizer is not None else None,
    }, sort_keys=True)


def _entry_of(model: Any, p: torch.Tensor) -> Any:
    """The state entry of a parameter the optimizer holds; a typed error for a foreign tensor."""
    e = model.layout.entry_of(p)
    if e is None:
        raise CheckpointError(f"the optimizer holds a tensor of shape {tuple(p.shape)} that is not a "
                              "parameter of the distributed model", "build the optimizer from dist_model.parameters()")
    return e


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
                else:
                    out[f"{OPTIM}{e.key}/{name}"] = value.detach() if isinstance(value, torch.Tensor) else value
    out["optim_groups"] = pickle.dumps(groups)
    return out


def _check_complete(model: Any) -> None:
    """Every key of the model is held by some rank (else the checkpoint could not be loaded anywhere)."""
    mine = sorted({e.key for e in model.layout.entries})
    every: list[Any] = [None] * model.topology.world_size
    dist.all_gather_object(every, mine, group=model.groups.world)
    missing = [k for k in model.layout.keys if not any(k in held for held in every)]
    if missing:
        raise CheckpointError(f"no rank holds {missing}; the checkpoint would be incomplete", "report this as a bug")


def save_checkpoint(model: Any, path: str, optimizer: torch.optim.Optimizer | None = None, extra: Any = None) -> str:
    """Write `model` (and `optimizer`, and `extra`) to the directory `path` (collective; module docstring)."""
    _check_complete(model)
    state: dict[str, Any] = {MODEL + e.key: _placed(model, e, e.tensor.detach()) for e in model.layout.entries}
    if optimizer is not None:
        state.update(_optimizer_entries(model, optimizer))
    state["meta"] = _meta(model, optimizer)
    state[f"rng/{model.rank}"] = torch.get_rng_state()
    if extra is not None:
        state["extra"] = pickle.dumps(extra)
    path = os.path.abspath(path)
    partial, world = path + ".partial", model.groups.world
    if model.rank == 0:
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
    dist.barrier(group=world)
    dcp.save(state, storage_writer=dcp.FileSystemWriter(partial), process_group=world)
    dist.barrier(group=world)
    if model.rank == 0:
        old = path + ".old"
        if os.path.exists(path):
            os.replace(path, old)
        os.replace(partial, path)
        shutil.rmtree(old, ignore_errors=True)
    dist.barrier(group=world)
    return path


def read_meta(path: str) -> dict:
    """The checkpoint's `meta` record (one process, no collectives)."""
    if not os.path.isfile(os.path.join(path, ".metadata")):
        hint = " (an interrupted save leaves <dir>.partial)" if os.path.isdir(path + ".partial") else ""
        raise CheckpointError(f"{path!r} is not a complete checkpoint: no DCP .metadata file{hint}",
                              "point at a directory written by save_checkpoint")
    state: dict[str, Any] = {"meta": ""}
    dcp.load(state, storage_reader=dcp.FileSystemReader(path), no_dist=True)
    meta = json.loads(state["meta"])
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} has format {meta.get('format')!r}, expected {FORMAT!r}",
                              "write it with this version of dmt_compile")
    return meta


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
    groups = pickle.loads(state["optim_groups"])
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointError(f"the checkpoint's optimizer has {len(groups)} param groups, this one "
                              f"{len(optimizer.param_groups)}", "build the optimizer the way the saving run did")
    index, out_state, out_groups = 0, {}, []
    for saved, group in zip(groups, optimizer.param_groups):
        ids = []
        for p in group["params"]:
            if id(p) in where:
                out_state[index] = {name: _local(state[k]) for name, k in where[id(p)].items()}
            ids.append(index)
            index += 1
        out_groups.append({**saved, "params": ids})
    optimizer.load_state_dict({"state": out_state, "param_groups": out_groups})


def load_checkpoint(model: Any, path: str, optimizer: torch.optim.Optimizer | None = None, strict: bool = True) -> Any:
    """Load `path` into `model` (and `optimizer`) in place; returns the saved `extra` (collective)."""
    path = os.path.abspath(path)
    meta = read_meta(path)
    _check_compatible(model.layout, meta, strict, path)
    reader = dcp.FileSystemReader(path)
    md = reader.read_metadata()
    state: dict[str, Any] = {MODEL + e.key: _placed(model, e, e.tensor.detach()) for e in model.layout.entries
                             if MODEL + e.key in md.state_dict_metadata}
    where: dict[int, dict[str, str]] = {}
    if optimizer is not None:
        if meta["optimizer"] is None:
            raise CheckpointError(f"checkpoint {path!r} holds no optimizer state",
                                  "load it without optimizer=, or save with optimizer=")
        opt_state, where = _optimizer_templates(model, optimizer, md)
        state.update(opt_state)
        state["optim_groups"] = b""
    same_world = meta["world_size"] == model.topology.world_size
    rng = f"rng/{model.rank}"
    if same_world and rng in md.state_dict_metadata:
        state[rng] = torch.get_rng_state()
    if "extra" in md.state_dict_metadata:
        state["extra"] = b""
    dcp.load(state, storage_reader=reader, process_group=model.groups.world)
    if optimizer is not None:
        _load_optimizer(optimizer, state, where)
    if rng in state:
        torch.set_rng_state(state[rng])
    return pickle.loads(state["extra"]) if "extra" in state else None


def read_checkpoint(path: str) -> tuple[dict, dict[str, Any]]:
    """(meta, every entry as a full tensor or object) in one process, without collectives."""
    meta = read_meta(path)
    reader = dcp.FileSystemReader(path)
    md = reader.read_metadata()
    state: dict[str, Any] = {}
    for k, m in md.state_dict_metadata.items():
        state[k] = torch.empty(tuple(m.size), dtype=m.properties.dtype) if isinstance(m, TensorStorageMetadata) \
            else None
    dcp.load(state, storage_reader=reader, no_dist=True)
    return meta, state


def flat_state_from_checkpoint(path: str, strict: bool = True) -> dict[str, torch.Tensor]:
    """The original model's `state_dict` (its keys, its order) from a distributed checkpoint."""
    meta, state = read_checkpoint(path)
    if meta["rebuilt"] and strict:
        raise CheckpointError(
            f"the rewrite rebuilt layers whose tensors {meta['rebuilt']} have no flat counterpart",
            "convert with strict=False (--partial) and load with flat.load_state_dict(sd, strict=False)")
    for table, split in meta.get("split", {}).items():  # tables split per field: their pieces, whole again
        first = state[MODEL + split["pieces"][0][0]]
        whole = first.new_zeros((split["rows"], *first.shape[1:]))
        for key, start, stop, step in split["pieces"]:
            whole[start:stop:step] = state[MODEL + key]
        state[MODEL + table] = whole
    return {k: state[MODEL + k] for k in meta["original"] if MODEL + k in state}
