"""`distribute(dmt, topology)`: train a transformed model like TorchRec's `DistributedModelParallel`.

    dist_model = dmt_compile.distribute(dmt, "2x2")          # on every rank, after init_process_group
    opt = torch.optim.Adam(dist_model.parameters(), lr=1e-3)
    loss = loss_fn(dist_model(*local_batch), local_labels)     # the rank's *local* batch, original call convention
    opt.zero_grad(); loss.backward(); opt.step()               # gradients are synchronised during backward
    dist_model.save_checkpoint("ckpt/step_3", optimizer=opt)   # DCP; loads on any topology

`DistributedDmt` runs this rank's share of the model (`ShardedDmt`: tables only on their owner,
Tower Modules only on their host) and synchronises gradients during `backward()` with bucketed
hooks (`distributed_reducer`): dense parameters over the world, Tower-Module parameters inside the
host, tables on their owners, so every `torch.optim` optimizer works unchanged. Replicated
parameters start equal (`init_sync`, see `ShardedDmt`). Checkpoints: `training/checkpoint.py`.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.training.checkpoint_layout import StateLayout
from dmt_compile.training.reducer import GradReducer, ReduceSpec, backward_order
from dmt_compile.training.finite_guard import FiniteGuard
from dmt_compile.training.sharded import ShardedDmt
from dmt_compile.training.batching import infer_batch_layout
from dmt_compile.training.micro_batches import MicroBatchPipeline, batch_of, check_chunks
from dmt_compile.runtime.devices import resolve_rank_device, to_device
from dmt_compile.runtime.groups import HierarchicalGroups, check_fingerprint
from dmt_compile.topo import Topology, as_topology

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["distribute", "DistributedDmt", "DENSE_SYNCS", "build_reducer"]

DENSE_SYNCS = ("world", "hierarchical", "hierarchical_async")


def _groups(dmt: DmtModel, where: Any) -> HierarchicalGroups:
    if isinstance(where, HierarchicalGroups):
        return where
    topo = dmt.topology if where is None else as_topology(where)
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeSetupError(
            "torch.distributed is not initialised, so there is no process group to distribute over",
            "start the ranks with torchrun and call dmt_compile.runtime.init_from_env(topology) first, "
            "or run the training function under dmt_compile.runtime.launch_local")
    return HierarchicalGroups.build(topo)


def distribute(dmt: DmtModel, topology_or_groups: Topology | str | HierarchicalGroups | None = None, *,
               row_wise: str = "auto", init_sync: str = "broadcast", bucket_cap_mb: float = 25.0,
               strategy: str = "sptt", dense_sync: str = "world", check_finite: bool = False,
               device: torch.device | str | None = None, dedup_ids: bool = False,
               pipeline_chunks: int = 1) -> "DistributedDmt":
    """This rank's `DistributedDmt` of a transformed model (every rank calls it, with the same model).

    `topology_or_groups`: the `HierarchicalGroups` to run on, or a topology (default: the one the
    model was transformed for) whose groups are built on the initialised default process group.
    `row_wise`: "auto" | "never" | "always" (tables sharded by rows inside a host). `init_sync`:
    "broadcast" (default) | "check" | "off" for replicated parameters at start-up.
    `bucket_cap_mb`: gradient bucket size. `strategy`: "sptt" or "flat" (a one-tower `1xW` transform).
    `dense_sync`: "world" (default: one asynchronous all-reduce per bucket over the world, overlapping
    the rest of backward) | "hierarchical" (reduce-scatter in the host, all-reduce across hosts,
    all-gather in the host: 1/L of the dense gradients cross the NICs; the reduce-scatter overlaps backward,
    the rest runs when backward ends) | "hierarchical_async" (the same three stages, each bucket's cross-host
    all-reduce and all-gather started on a helper thread as soon as its reduce-scatter is in, so all three
    overlap backward; bitwise the same result; gloo point-to-point exchanges only, else as "hierarchical",
    `runtime/hierarchical_chain.py`). `check_finite`: opt-in guard that raises `NonFiniteError` naming
    this rank and the step when an input, an output, the loss gradient or a parameter gradient holds
    NaN/inf, before it reaches the other ranks (`training/finite_guard.py`).
    `device`: None / "auto" (default) follows the process group's backend: under NCCL the rank's GPU
    (`cuda:LOCAL_RANK`, made current), under gloo the CPU; "cpu", "cuda" or "cuda:N" ask for one
    (a device that is absent raises `RuntimeSetupError`). This rank's tables, layers and buffers move
    there, and so does every batch given to `forward` / `local_batch`.
    `dedup_ids`: each (host, table)'s distinct ids cross hosts once,
    with a narrow index per id (`runtime/id_dedup.py`; exact; pays off for multi-hot and sequence features).
    `pipeline_chunks`: k > 1 runs each forward as k micro-batches whose id exchanges, lookups, Tower
    Modules, output exchanges and dense layers overlap one another (`training/micro_batches.py`); the
    outputs are joined, so losses and gradients equal k = 1's up to float summation order (for layers
    without batch statistics). Every rank must pass the same k (checked); its local batch needs >= k samples.

    The returned module shares its tables and layers with `dmt` (and registers gradient hooks on
    them): train through the returned module, not through `dmt` in the same process.
    """
    return DistributedDmt(dmt, _groups(dmt, topology_or_groups), row_wise=row_wise, init_sync=init_sync,
                          bucket_cap_mb=bucket_cap_mb, strategy=strategy, dense_sync=dense_sync,
                          check_finite=check_finite, device=device, dedup_ids=dedup_ids,
                          pipeline_chunks=pipeline_chunks)


def build_reducer(s: ShardedDmt, dense_sync: str = "world", bucket_cap_mb: float = 25.0) -> GradReducer:
    """The gradient hooks of `distribute` on a `ShardedDmt`: dense over the world (`dense_sync`, see
    `distribute`), Tower Modules inside the host, tables on their owner."""
    hier = (s.groups.intra, s.groups.peer) if dense_sync.startswith("hierarchical") else None
    chained = dense_sync == "hierarchical_async"
    dense = backward_order(s.gm, s.dense_params)
    towers = backward_order(s.gm, s.tower_params)
    if s.strategy == "flat":
        specs = [ReduceSpec("world", s.groups.world, tuple(towers + dense), "grads", hier, chained)]
    else:
        specs = [ReduceSpec("intra", s.groups.intra, tuple(towers), "tm_grads"),
                 ReduceSpec("world", s.groups.world, tuple(dense), "dense_grads", hier, chained)]
    return GradReducer([sp for sp in specs if sp.params], s.embedding_params, s.groups.topology.world_size,
                       bucket_cap_mb)


class DistributedDmt(nn.Module):
    """One rank's share of a transformed model, trainable with any `torch.optim` optimizer (module docstring)."""

    def __init__(self, dmt: DmtModel, groups: HierarchicalGroups, *, row_wise: str = "auto",
                 init_sync: str = "broadcast", bucket_cap_mb: float = 25.0, strategy: str = "sptt",
                 dense_sync: str = "world", check_finite: bool = False, device: torch.device | str | None = None,
                 dedup_ids: bool = False, pipeline_chunks: int = 1):
        super().__init__()
        check_chunks(pipeline_chunks)
        if dense_sync not in DENSE_SYNCS:
            raise RuntimeSetupError(f"unknown dense_sync {dense_sync!r}", "choose one of: " + ", ".join(DENSE_SYNCS))
        self.device = resolve_rank_device(device)
        self.sharded = ShardedDmt(dmt, groups, strategy=strategy, row_wise=row_wise, init_sync=init_sync,
                                  device=self.device, dedup_ids=dedup_ids)
        self.held_state = dmt.held_state  # original tensors the graph never used: kept for checkpoints
        self.groups = groups
        self.topology = groups.topology
        self.plan = dmt.plan
        self.input_spec = dmt.input_spec
        self.batch_layout = infer_batch_layout(dmt)
        self.layout = StateLayout.build(dmt, self.sharded)
        self.dense_sync = dense_sync
        self.pipeline = None
        # every rank must cut its step alike, or the exchanges pair up wrongly
        check_fingerprint(f"pipeline_chunks={pipeline_chunks}", groups.world, what="pipeline_chunks")
        if pipeline_chunks > 1:
            self.pipeline = MicroBatchPipeline(self.sharded, pipeline_chunks, self.batch_layout)
        # before the reducer: parameter hooks run in order, so the guard sees a gradient before it is bucketed
        self.finite_guard = FiniteGuard(groups.rank, list(self.sharded.named_parameters())) if check_finite else None
        self.reducer = self._reducer(bucket_cap_mb)

    def _reducer(self, bucket_cap_mb: float) -> GradReducer:
        return build_reducer(self.sharded, self.dense_sync, bucket_cap_mb)

    @property
    def rank(self) -> int:
        return self.groups.rank

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """This rank's local batch in the original model's call convention -> the local outputs."""
        guard = self.finite_guard
        run = self.sharded if self.pipeline is None else lambda *a, **k: self.pipeline.forward(a, k)
        if guard is None:
            return run(*args, **kwargs)
        guard.check_inputs([leaf.display for leaf in self.input_spec.leaves], self.input_spec.flatten(args, kwargs))
        return guard.check_outputs(run(*args, **kwargs))

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (no communication); the next backward outside reduces them all."""
        before = self.reducer.enabled
        self.reducer.enabled = False
        try:
            yield
        finally:
            self.reducer.enabled = before

    def local_batch(self, *args: Any, **kwargs: Any) -> tuple:
        """This rank's share of a *global* batch (original call convention in and out): samples
        [rank * b, (rank + 1) * b) with b = global batch / world size."""
        from dmt_compile.errors import InputError

        flat = self.input_spec.flatten(args, kwargs)
        world = self.topology.world_size
        total = batch_of(flat, self.batch_layout)
        if total % world:
            raise InputError(f"the global batch of {total} samples does not split over {world} ranks",
                             f"use a global batch size divisible by {world}")
        b = total // world
        local = self.batch_layout.slice(flat, self.rank * b, (self.rank + 1) * b)
        parts = self.input_spec.unflatten([to_device(x, self.device) for x in local])
        return tuple(parts[name] for name in self.input_spec.arg_names)

    def save_checkpoint(self, path: str, optimizer: torch.optim.Optimizer | None = None, extra: Any = None,
                        overwrite: bool = False) -> str:
        """Write a DCP checkpoint; `extra` is plain (JSON) data; a path that is not one of our checkpoints
        is refused unless `overwrite=True` (collective; see `training.checkpoint.save_checkpoint`)."""
        from dmt_compile.training.checkpoint import save_checkpoint

        return save_checkpoint(self, path, optimizer=optimizer, extra=extra, overwrite=overwrite)

    def load_checkpoint(self, path: str, optimizer: torch.optim.Optimizer | None = None, strict: bool = True) -> Any:
        """Load a DCP checkpoint written on any topology; returns its `extra` (collective)."""
        from dmt_compile.training.checkpoint import load_checkpoint

        return load_checkpoint(self, path, optimizer=optimizer, strict=strict)

    def local_state(self) -> dict[str, tuple[torch.Tensor, int, int]]:
        """{state key: (this rank's tensor, first row, end row)} for what this rank holds (rows of a row-wise table)."""
        return {e.key: (e.tensor, e.start, e.stop) for e in self.layout.entries}

    def describe(self) -> str:
        kinds = self.layout.counts()
        return (f"rank {self.rank} (host {self.topology.host_of(self.rank)}): {kinds['owned']} tables, "
                f"{kinds['rows']} row shards, {kinds['replicated']} replicated tensors; "
                f"{len(self.reducer.buckets)} gradient buckets")

