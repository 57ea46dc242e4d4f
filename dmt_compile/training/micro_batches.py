"""`MicroBatchPipeline`: one training step as k micro-batches whose exchanges overlap each other's compute.

The rank program is cut at the node that posts the Tower-Module output exchange (``dist.outputs``)
into a **sparse stage** (the chunk's id exchange, lookups, Tower Modules, posting the output
exchange) and a **dense stage** (waiting for the outputs, the interaction and the top layers; also
compute that never reads a tower output, such as a bottom MLP). The local batch is cut into k
chunks of consecutive samples and the stages run in the order

    sparse(0), sparse(1), dense(0), sparse(2), dense(1), ..., sparse(k-1), dense(k-2), dense(k-1)

with chunk i+1's id exchange posted (on its own point-to-point tag) before sparse(i) runs. So chunk
i+1's ids cross while chunk i computes, chunk i's outputs cross while chunk i+1's lookups and Tower
Modules run, and chunk i+1's outputs cross while chunk i's dense layers run. Every rank runs the
same stages in the same order, so every group sees its exchanges in the same order.

The chunks' outputs are concatenated along the batch dimension, so the call returns what the
whole batch would: a loss that is a mean over the local batch gets the same value, and backward
the same gradients (sums over the chunks of per-sample terms: equal up to float summation order).
This holds for models whose layers treat samples independently (no batch statistics such as
``BatchNorm`` in training mode, whose per-chunk statistics differ). Backward is one pass over all
chunks; its exchanges run blocking, in autograd's order (the same on every rank).

    pipe = MicroBatchPipeline(sharded, chunks=4)
    out = pipe.forward(batch)            # same call convention as sharded(*batch)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx
from torch.utils._pytree import tree_flatten, tree_unflatten

from dmt_compile.errors import InputError, RuntimeSetupError
from dmt_compile.ir.module_paths import DIST_IDS, DIST_OUTPUTS
from dmt_compile.training.pipeline import _prologue

if TYPE_CHECKING:
    from dmt_compile.training.batching import BatchLayout
    from dmt_compile.training.sharded import ShardedDmt

__all__ = ["MicroBatchPipeline", "split_at_outputs", "chunk_bounds", "concat_outputs", "batch_of", "check_chunks"]


def check_chunks(chunks: Any) -> int:
    """`chunks` if it is a valid `pipeline_chunks` (a positive integer), else `RuntimeSetupError`."""
    if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1:
        raise RuntimeSetupError(f"pipeline_chunks must be a positive integer, got {chunks!r}",
                                "pass pipeline_chunks=1 (off) or a small count such as 2 or 4")
    return chunks


def batch_of(flat: list[Any], layout: BatchLayout) -> int:
    """Samples in a flat batch, read off its first batch-major leaf."""
    for i, (x, kind) in enumerate(zip(flat, layout.kinds)):
        if kind == "rows":
            return int(x.shape[0])
        if kind == "columns":  # the batch on dim 1 (training/batching.py)
            return int(x.shape[1])
        if kind == "offsets":
            return int(x.numel()) - (1 if layout.last_offset[i] else 0)
        if kind == "kjt":
            return int(x.stride())
    return layout.batch


def _stage_nodes(gm: fx.GraphModule, start: fx.Node) -> set[fx.Node]:
    """`start` and every node it depends on (placeholders and attributes excepted)."""
    found: set[fx.Node] = set()
    stack = [start]
    while stack:
        n = stack.pop()
        if n in found or n.op in ("placeholder", "get_attr"):
            continue
        found.add(n)
        stack.extend(n.all_input_nodes)
    return found


def split_at_outputs(gm: fx.GraphModule) -> tuple[fx.GraphModule, fx.GraphModule] | None:
    """(sparse stage, dense stage) of a rank program, or None when it has no output exchange.

    The sparse stage takes the program's inputs and returns the values the dense stage needs
    (the pending output exchange among them); the dense stage takes the program's inputs followed
    by those values and returns what the program returns.
    """
    start = next((n for n in gm.graph.nodes if n.op == "call_module" and n.target == DIST_OUTPUTS), None)
    if start is None:
        return None
    sparse = _stage_nodes(gm, start)
    nodes = list(gm.graph.nodes)
    carried = [n for n in nodes if n in sparse and any(u not in sparse for u in n.users)]
    a, env_a = fx.Graph(), {}
    for n in nodes:
        if n.op == "placeholder" or n in sparse or (n.op == "get_attr" and any(u in sparse for u in n.users)):
            env_a[n] = a.node_copy(n, lambda x: env_a[x])
    a.output(tuple(env_a[n] for n in carried))
    b, env_b = fx.Graph(), {}
    for n in nodes:
        if n.op == "placeholder":
            env_b[n] = b.node_copy(n, lambda x: env_b[x])
    for n in carried:
        env_b[n] = b.placeholder(f"sparse_{n.name}")
    for n in nodes:
        if n.op == "placeholder" or n in sparse or (n.op == "get_attr" and all(u in sparse for u in n.users)):
            continue
        env_b[n] = b.node_copy(n, lambda x: env_b[x])
    return fx.GraphModule(gm, a, "SparseStage"), fx.GraphModule(gm, b, "DenseStage")


def chunk_bounds(batch: int, chunks: int) -> list[tuple[int, int]]:
    """[start, stop) of `chunks` consecutive near-equal pieces of `batch` samples (the first ones one larger)."""
    if batch < chunks:
        raise InputError(f"a local batch of {batch} samples cannot split into pipeline_chunks={chunks} micro-batches",
                         f"use pipeline_chunks <= {batch} or a larger batch")
    bounds, at = [], 0
    for i in range(chunks):
        size = batch // chunks + (1 if i < batch % chunks else 0)
        bounds.append((at, at + size))
        at += size
    return bounds


def concat_outputs(outs: list[Any], sizes: list[int]) -> Any:
    """The chunks' outputs (same structure) joined along dim 0; every tensor leaf has one row per sample."""
    leaves, spec = tree_flatten(outs[0])
    per_chunk = [leaves] + [tree_flatten(o)[0] for o in outs[1:]]
    joined = []
    for j, leaf in enumerate(leaves):
        if not isinstance(leaf, torch.Tensor) or leaf.dim() == 0 or leaf.shape[0] != sizes[0]:
            shape = tuple(leaf.shape) if isinstance(leaf, torch.Tensor) else type(leaf).__name__
            raise RuntimeSetupError(
                f"pipeline_chunks needs outputs with one row per sample, but output {j} is {shape} "
                f"for a micro-batch of {sizes[0]} samples",
                "return per-sample outputs (compute the loss outside the model), or use pipeline_chunks=1")
        joined.append(torch.cat([c[j] for c in per_chunk]))
    return tree_unflatten(joined, spec)


class MicroBatchPipeline:
    """Run a ``ShardedDmt``'s step as `chunks` overlapped micro-batches (module docstring)."""

    def __init__(self, sharded: ShardedDmt, chunks: int, layout: BatchLayout):
        """`layout`: how the inputs split by sample (`training.batching.infer_batch_layout(dmt)`)."""
        check_chunks(chunks)
        self.chunks, self.gm, self.spec = chunks, sharded.gm, sharded.input_spec
        self.device = sharded.device
        self.layout = layout
        self.stages = split_at_outputs(self.gm)
        node = next((n for n in self.gm.graph.nodes if n.op == "call_module" and n.target == DIST_IDS), None)
        self.ids = self.gm.get_submodule(DIST_IDS) if node is not None else None
        self.prologue = _prologue(self.gm, node) if node is not None else None

    def forward(self, args: tuple, kwargs: dict | None = None) -> Any:
        """The outputs of ``sharded(*args, **kwargs)``, computed chunk by chunk (module docstring)."""
        from dmt_compile.runtime.devices import to_device

        flat = self.spec.flatten(tuple(args), dict(kwargs or {}))
        if self.device.type != "cpu":
            flat = [to_device(x, self.device) for x in flat]
        return self.forward_flat(flat)

    def forward_flat(self, flat: list) -> Any:
        """:meth:`forward` on the rank program's flattened inputs."""
        bounds = chunk_bounds(batch_of(flat, self.layout), self.chunks)
        if len(bounds) == 1:
            return self.gm(*flat)
        parts = [self.layout.slice(flat, lo, hi) for lo, hi in bounds]
        if self.stages is None:  # no output exchange: chunks one after another, ids one chunk ahead
            outs = [self._sparse(parts, i, run=self.gm) for i in range(len(parts))]
        else:
            sparse, dense = self.stages
            outs, carried = [], {0: self._sparse(parts, 0, run=sparse)}
            for i in range(len(parts)):
                if i + 1 < len(parts):
                    carried[i + 1] = self._sparse(parts, i + 1, run=sparse)
                outs.append(dense(*parts[i], *carried.pop(i)))
        return concat_outputs(outs, [hi - lo for lo, hi in bounds])

    def _sparse(self, parts: list[list], i: int, run: fx.GraphModule) -> Any:
        """Run `run` on chunk i after posting chunk i+1's id exchange (and chunk i's, the first time)."""
        if self.ids is not None:
            if not self.ids.prefetched():
                self.ids.prefetch(*self.prologue(*parts[i]))
            if i + 1 < len(parts):
                self.ids.prefetch(*self.prologue(*parts[i + 1]))
        return run(*parts[i])
