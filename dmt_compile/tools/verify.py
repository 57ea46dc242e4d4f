"""`verify`: run a transformed model on world-size gloo processes and compare with one process.

Each rank builds the model from the MODEL_SPEC (same seed), takes its share of a global batch,
runs forward, backward (BCE on the first output against fixed labels), gradient sync and one
optimizer step, and compares outputs, every gradient and every updated parameter with the
single-process reference: the original model for the identity Tower Module, the single-process
transformed model for a compressing one. Communication per group is recorded too.
"""
from __future__ import annotations

import dataclasses

import inspect
import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from dmt_compile.errors import InputError
from dmt_compile.runtime.devices import rank_device, to_device

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["VerifyOptions", "verify_worker", "first_tensor", "make_optimizers"]


@dataclass(frozen=True)
class VerifyOptions:
    spec: str
    topology: str
    tower_module: str = "identity"
    compression: float | None = None
    per_rank_batch: int = 4
    optimizer: str = "sgd"  # sgd | adagrad (Adagrad for the embedding tables, SGD for the rest)
    lr: float = 0.1
    seed: int = 0
    strategy: str = "sptt"  # sptt | flat
    row_wise: str = "auto"  # auto | never | always (tables sharded by rows inside a host)
    device: str = "cpu"  # cpu (gloo) | cuda (NCCL; each rank on cuda:<local rank>)
    wire_dtype: str | None = None  # format of the embedding exchanges (None: exact); the reference stays exact

    def __post_init__(self) -> None:
        """Refuse options no run can use before any process starts (typed errors naming the option)."""
        b = self.per_rank_batch
        if not isinstance(b, int) or isinstance(b, bool) or b < 1:
            raise InputError(f"per_rank_batch (--batch-per-rank) must be a positive integer, got {b!r}",
                             "give each rank at least one sample, e.g. --batch-per-rank 4")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise InputError(f"lr (--lr) must be a positive finite number, got {self.lr!r}", "e.g. --lr 0.1")
        for name, value, allowed in (("strategy", self.strategy, ("sptt", "flat")),
                                     ("optimizer", self.optimizer, ("sgd", "adagrad")),
                                     ("row_wise", self.row_wise, ("auto", "never", "always")),
                                     ("device", self.device, ("cpu", "cuda"))):
            if value not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {value!r}", f"pick one of {allowed}")


def first_tensor(out: Any) -> torch.Tensor:
    """The first tensor of a model's output, in order (entries that hold no tensor, a `None`, are passed)."""
    if isinstance(out, torch.Tensor):
        return out
    if dataclasses.is_dataclass(out) and not isinstance(out, type):  # an output dataclass: its fields
        out = [getattr(out, f.name) for f in dataclasses.fields(out)]
    items = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (list, tuple)) else []
    for item in items:
        try:
            return first_tensor(item)
        except LookupError:
            continue
    raise LookupError(f"the output holds no tensor ({type(out).__name__})")


def _load(opts: VerifyOptions, world: int):
    from dmt_compile.capture.model_spec import load_model_spec

    where, _, attr = opts.spec.rpartition(":")
    model, inputs = load_model_spec(opts.spec)
    factory_params = _factory_params(opts.spec)
    if "batch_size" in factory_params:
        model, inputs = load_model_spec(opts.spec, batch_size=world * opts.per_rank_batch)
    device = _device(opts)
    return model.to(device), to_device(inputs, device)


def _device(opts: VerifyOptions) -> torch.device:
    return rank_device("nccl" if opts.device == "cuda" else "gloo")


def progress(rank: int, text: str, start: float) -> None:
    """One progress line on stderr, from rank 0 only (every rank does the same work)."""
    if rank == 0:
        print(f"verify: rank 0: {text} ({time.monotonic() - start:.1f} s)", file=sys.stderr, flush=True)


def _load_for_preflight(opts: VerifyOptions, world: int):
    """The model and inputs as the ranks load them, on the CPU (the parent's check before spawning)."""
    from dmt_compile.capture.model_spec import load_model_spec

    if "batch_size" in _factory_params(opts.spec):
        return load_model_spec(opts.spec, batch_size=world * opts.per_rank_batch)
    return load_model_spec(opts.spec)


def _factory_params(spec: str) -> set[str]:
    from dmt_compile.capture.model_spec import _load_module

    where, _, attr = spec.rpartition(":")
    try:
        return set(inspect.signature(getattr(_load_module(where), attr)).parameters)
    except (TypeError, ValueError):
        return set()


def make_optimizers(params_by_name: dict[str, torch.nn.Parameter], table_names: set[str], kind: str, lr: float):
    tables = [p for n, p in sorted(params_by_name.items()) if n in table_names]
    dense = [p for n, p in sorted(params_by_name.items()) if n not in table_names]
    opts = []
    if kind == "adagrad":
        if tables:
            opts.append(torch.optim.Adagrad(tables, lr=lr))
        if dense:
            opts.append(torch.optim.SGD(dense, lr=lr))
    else:
        opts.append(torch.optim.SGD(tables + dense, lr=lr))
    return opts


def _table_param_names(dmt: DmtModel) -> set[str]:
    """Embedding tables (Adagrad in `--optimizer adagrad`), including tables split per field and their pieces."""
    splits = getattr(getattr(dmt, "table_splits", None), "splits", ())
    return {t for lk in dmt.detection.lookups for t in lk.tables} | {s.table for s in splits}


def _transform(opts: VerifyOptions, model, inputs, topology):
    import dmt_compile

    torch.manual_seed(opts.seed)
    if opts.strategy == "flat":
        return dmt_compile.transform(model, topology, inputs, num_towers=1)
    return dmt_compile.transform(model, topology, inputs, tower_module=opts.tower_module,
                                 compression=opts.compression)


def _bce(out: Any, labels: torch.Tensor) -> torch.Tensor:
    out = first_tensor(out).reshape(-1, 1)
    return torch.nn.functional.binary_cross_entropy_with_logits(out, labels.to(out.dtype))


def _reference_step(opts: VerifyOptions, reference, dmt_ref, inputs, flat, labels, tables):
    """One step of the single-process reference on the global batch: (output, grads, params after the step)."""
    ref_params = dict(reference.named_parameters())
    out_ref = dmt_ref.graph_module(*flat) if reference is dmt_ref.graph_module else reference(*inputs)
    _bce(out_ref, labels).backward()
    ref_grads = {n: _dense(p.grad).clone() for n, p in ref_params.items() if p.grad is not None}
    for o in make_optimizers(ref_params, tables, opts.optimizer, opts.lr):
        o.step()
    return out_ref, ref_grads, ref_params


def _alias_split_tables(splits: Any, ref_grads: dict, ref_params: dict) -> None:
    """Name each piece of a table split per field after the rows of the reference table it came from."""
    for split in getattr(splits, "splits", ()):
        for piece in split.pieces:
            rows = slice(piece.start, piece.stop, piece.step)
            if split.table in ref_grads:
                ref_grads[piece.parameter] = ref_grads[split.table][rows]
            if split.table in ref_params:
                ref_params[piece.parameter] = ref_params[split.table].detach()[rows]


def _dense(grad: torch.Tensor) -> torch.Tensor:
    """Gradients of ``sparse=True`` embeddings are sparse COO tensors; compare them as dense ones."""
    return grad.to_dense() if grad.is_sparse else grad


def _compare(opts: VerifyOptions, sharded, names, ref_grads, ref_params, tables) -> tuple[float, float, list, int]:
    """Step the sharded model's optimizers; largest gradient and parameter differences to the reference."""
    mine = {names[id(p)]: p for p in sharded.parameters() if id(p) in names}
    grad_diff = max((float((_dense(p.grad) - ref_grads[n]).abs().max()) for n, p in mine.items()
                     if p.grad is not None and n in ref_grads), default=0.0)
    missing = sorted(n for n, p in mine.items() if (p.grad is None) != (n not in ref_grads))
    shards = list(sharded.row_shards)
    for p, n, a, z in shards:  # row shards: compare with the rows of the reference table
        if p.grad is not None and n in ref_grads:
            grad_diff = max(grad_diff, float((_dense(p.grad) - ref_grads[n][a:z]).abs().max()))
    opt_params = dict(mine)
    opt_params.update({f"{n}[{a}:{z}]": p for p, n, a, z in shards})
    tables = tables | {f"{n}[{a}:{z}]" for _, n, a, z in shards}
    for o in make_optimizers(opt_params, tables, opts.optimizer, opts.lr):
        o.step()
    param_diff = max((float((p.detach() - ref_params[n].detach()).abs().max()) for n, p in mine.items()
                      if n in ref_params), default=0.0)
    for p, n, a, z in shards:
        param_diff = max(param_diff, float((p.detach() - ref_params[n].detach()[a:z]).abs().max()))
    return grad_diff, param_diff, missing, len(mine) + len(shards)


def verify_worker(rank: int, opts: VerifyOptions) -> dict:
    """One rank of `verify` (runs inside `launch_local`); returns max differences and comm stats.

    Long: one straight script (load, transform twice, reference step, sharded step, compare) whose
    phases print progress lines; splitting it would pass a dozen locals between pieces."""
    from dmt_compile.training.sharded import ShardedDmt
    from dmt_compile.training.batching import infer_batch_layout
    from dmt_compile.runtime.comm_stats import recording
    from dmt_compile.runtime.groups import HierarchicalGroups
    from dmt_compile.topo import Topology, as_topology

    start = time.monotonic()
    topo = as_topology(opts.topology)
    world = topo.world_size
    groups = HierarchicalGroups.build(topo)
    progress(rank, f"process groups of {topo} ready", start)
    model_ref, inputs = _load(opts, world)
    dmt_topo = Topology(1, world) if opts.strategy == "flat" else topo
    # reference: original model (identity) or single-process transformed model (compressing TM)
    dmt_ref = _transform(opts, model_ref, inputs, dmt_topo)
    reference = model_ref if opts.tower_module == "identity" or opts.strategy == "flat" else dmt_ref.graph_module
    model_run, _ = _load(opts, world)
    dmt_run = _transform(opts, model_run, inputs, dmt_topo)
    dmt_run.wire_dtype = opts.wire_dtype  # only the distributed run's exchanges are coded
    progress(rank, "reference and distributed models transformed", start)
    layout = infer_batch_layout(dmt_run)
    batch = layout.batch
    if batch % world:
        raise InputError(f"the global batch of {batch} samples does not split over {world} ranks",
                         f"use a batch size divisible by {world}")
    b = batch // world
    flat = dmt_run.input_spec.flatten(inputs, {})
    labels = (torch.rand(batch, 1, generator=torch.Generator().manual_seed(1234)) > 0.5).float().to(_device(opts))
    tables = _table_param_names(dmt_run)
    # layers whose training-mode output depends on the whole batch (BatchNorm) differ under data
    # parallelism by design (per-rank statistics): compare such models in eval mode
    coupled = sorted({type(m).__name__ for m in model_ref.modules()
                      if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training})
    if coupled:
        model_ref.eval()
        dmt_ref.eval()
    out_ref, ref_grads, ref_params = _reference_step(opts, reference, dmt_ref, inputs, flat, labels, tables)
    if reference is not dmt_ref.graph_module:  # the original model: its tables are whole
        _alias_split_tables(getattr(dmt_run, "table_splits", None), ref_grads, ref_params)
    names = {id(p): n for n, p in dmt_run.graph_module.named_parameters()}
    with recording() as stats:
        sharded = ShardedDmt(dmt_run, groups, strategy="flat" if opts.strategy == "flat" else "sptt",
                             row_wise=opts.row_wise)
        if coupled:
            sharded.eval()
        progress(rank, "lowered; replicated parameters broadcast", start)
        del dmt_run, model_run
        out = sharded.gm(*layout.slice(flat, rank * b, (rank + 1) * b))
        _bce(out, labels[rank * b:(rank + 1) * b]).backward()
        sharded.sync_gradients()
    grad_diff, param_diff, missing, checked = _compare(opts, sharded, names, ref_grads, ref_params, tables)
    progress(rank, "one training step run and compared", start)
    out_diff = float((first_tensor(out).detach() - first_tensor(out_ref).detach()[rank * b:(rank + 1) * b])
                     .abs().max())
    return {
        "rank": rank, "output": out_diff, "grad": grad_diff, "param": param_diff, "grad_mismatch": missing,
        "params_checked": checked, "row_shards": len(sharded.row_shards), "stats": stats.snapshot(),
        "stats_by_op": stats.snapshot(by_op=True), "param_bytes": sharded.parameter_bytes(),
        "batch": batch, "owned_tables": len(sharded.embedding_params), "eval_mode_for": coupled,
    }
