"""Which dimension of an input, or of a value derived from inputs, carries the samples.

Most models take batch-major inputs (`[B, F]` ids, `[B, L]` sequences). Some take them field-major
(`[F, B]`, as some feature pipelines emit, read as `x[i]`) or time-major (`[L, B]`, the RNN convention
`batch_first=False`, looked up into `[L, B, D]`). The batch dim of each input follows from the example:
the model's output says the batch size `B` (dim 0 of its first tensor, `ir.shapes.output_batch_size`),
and an input's batch dim is dim 0 when that is `B`, else the one dim of size `B` (none: a constant input,
e.g. per-field offsets). When dim 0 and a later dim both have size `B` (an example batch equal to the
number of fields) dim 0 is taken, the conventional layout.

`ir.shapes.record_shapes` writes it as `dmt.batch_dim` on every tensor placeholder; `ir.column_layout`
starts a field-major input's layout from `(c, b)`, so `x[i]` is column i; `batch_dim_of` gives the batch
dim of any value the layout analysis follows back to an input (`passes/batch_dim_lookups.py` moves a
lookup's batch dim to the front).
"""
from __future__ import annotations

from typing import Any, Callable

import torch.fx as fx

from dmt_compile.ir.column_layout import column_layout
from dmt_compile.ir.meta import BATCH_DIM, SHAPE

__all__ = ["input_batch_dim", "annotate_inputs", "batch_dim_of"]


def input_batch_dim(shape: tuple[int, ...] | None, batch: int | None) -> int | None:
    """Dim 0 when its size is `batch`, else the one dim of that size, else None."""
    if not shape or batch is None:
        return None
    if shape[0] == batch:
        return 0
    dims = [d for d, s in enumerate(shape) if s == batch]
    return dims[0] if len(dims) == 1 else None


def annotate_inputs(gm: fx.GraphModule, batch: int | None) -> None:
    """`dmt.batch_dim` on every tensor placeholder, from its example shape and the output's batch size."""
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            node.meta[BATCH_DIM] = input_batch_dim(node.meta.get(SHAPE), batch)


def batch_dim_of(node: fx.Node, batch: int, below: Callable[[fx.Node], fx.Node]) -> int | None:
    """The batch dim of `node`'s value: where the layout analysis puts the samples of the input it is
    derived from by layout ops (`s.t()`, `s.unsqueeze(-1)`, element-wise ops), else by its sizes as for
    an input (a slice `s[-3:]` of a time-major sequence keeps the batch size on dim 1)."""
    layout = column_layout(node, below)
    if layout is not None and layout.source.op == "placeholder":  # else the layout assumed (b, c)
        return layout.dims.index("b")
    shape: Any = node.meta.get(SHAPE)
    return input_batch_dim(tuple(shape) if shape else None, batch)
