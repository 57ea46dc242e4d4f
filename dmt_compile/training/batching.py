"""Split a global batch into per-rank batches, generically, from what the graph says of each input.

Every input leaf is classified once: `rows` (batch-major), `columns` (the batch on dim 1: a
field-major `[F, B]` id matrix or a time-major `[L, B]` sequence, `dmt.batch_dim` from
`ir.batch_dims`), `jagged` (EmbeddingBag values with their offsets and optional per-sample weights,
all model inputs) or `constant` (no batch dimension, e.g. per-field offsets). Used by `verify` and the benchmarks to give each rank its share.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.fx as fx

from dmt_compile.errors import InputError
from dmt_compile.ir.boundary import ids_exchange
from dmt_compile.ir.meta import BATCH_DIM, DTYPE, INPUT_PATH, SHAPE

if TYPE_CHECKING:
    from dmt_compile.model import DmtModel

__all__ = ["BatchLayout", "infer_batch_layout"]


@dataclass(frozen=True)
class BatchLayout:
    kinds: tuple[str, ...]  # per flat leaf: rows | columns | values | offsets | weights | kjt | constant
    partner: tuple[int | None, ...]  # values/weights -> index of their offsets leaf
    last_offset: tuple[bool, ...]
    batch: int

    def slice(self, flat: list[Any], start: int, stop: int) -> list[Any]:
        """The leaves of samples [start, stop)."""
        out: list[Any] = []
        bounds: dict[int, tuple[int, int]] = {}
        for i, kind in enumerate(self.kinds):
            if kind == "offsets":
                off = flat[i]
                total = None
                for j, p in enumerate(self.partner):
                    if p == i and self.kinds[j] == "values":
                        total = flat[j].numel()
                full = off if self.last_offset[i] else torch.cat([off, off.new_tensor([total])])
                bounds[i] = (int(full[start]), int(full[stop]))
        for i, kind in enumerate(self.kinds):
            x = flat[i]
            if kind == "rows":
                out.append(x[start:stop])
            elif kind == "columns":
                out.append(x[:, start:stop])
            elif kind == "offsets":
                lo = bounds[i][0]
                piece = x[start: stop + (1 if self.last_offset[i] else 0)]
                out.append(piece - lo)
            elif kind in ("values", "weights"):
                lo, hi = bounds[self.partner[i]]
                out.append(x[lo:hi])
            elif kind == "kjt":
                out.append(_slice_kjt(x, start, stop))
            else:
                out.append(x)
        return out


def _slice_kjt(kjt: Any, start: int, stop: int) -> Any:
    """Samples [start, stop) of every key of a KeyedJaggedTensor."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    values, lengths, weights = [], [], []
    for key in kjt.keys():
        jt = kjt[key]
        offsets = jt.offsets()
        lo, hi = int(offsets[start]), int(offsets[stop])
        values.append(jt.values()[lo:hi])
        lengths.append(jt.lengths()[start:stop])
        if jt.weights_or_none() is not None:
            weights.append(jt.weights()[lo:hi])
    return KeyedJaggedTensor.from_lengths_sync(keys=kjt.keys(), values=torch.cat(values), lengths=torch.cat(lengths),
                                               weights=torch.cat(weights) if weights else None)


def infer_batch_layout(dmt: DmtModel) -> BatchLayout:
    gm: fx.GraphModule = dmt.graph_module
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    index = {n: i for i, n in enumerate(placeholders)}
    batch = dmt.detection.batch_size
    kinds: list[str] = [""] * len(placeholders)
    partner: list[int | None] = [None] * len(placeholders)
    last = [False] * len(placeholders)

    def source(n: Any):
        """The tensor an id argument was before the tower's ids_exchange."""
        if (isinstance(n, fx.Node) and n.op == "call_function" and n.target is operator.getitem
                and isinstance(n.args[0], fx.Node) and n.args[0].target is ids_exchange):
            return n.args[0].args[1 + n.args[1]]
        return n

    for n in gm.graph.nodes:
        lk = dmt.detection.lookup_of(n)
        if lk is None or not lk.is_bag:
            continue
        ids = [source(a) for a in lk.id_nodes(n)]
        if len(ids) < 2 or not all(isinstance(a, fx.Node) and a.op == "placeholder" for a in ids[:2]):
            continue
        if (ids[0].meta.get(SHAPE) or (0, 0)).__len__() != 1:
            continue
        v, o = index[ids[0]], index[ids[1]]
        kinds[v], kinds[o], partner[v] = "values", "offsets", o
        last[o] = lk.include_last_offset
        if len(ids) > 2 and isinstance(ids[2], fx.Node) and ids[2].op == "placeholder":
            kinds[index[ids[2]]], partner[index[ids[2]]] = "weights", o
    for i, p in enumerate(placeholders):
        if kinds[i]:
            continue
        shape = p.meta.get(SHAPE)
        if p.meta.get(DTYPE) == "KeyedJaggedTensor":
            kinds[i] = "kjt"
            continue
        if p.meta.get(DTYPE) == "JaggedTensor":
            raise InputError("a torchrec JaggedTensor input cannot be split by sample here",
                             "pass a KeyedJaggedTensor or batch-major tensors")
        if shape and shape[0] == batch:
            kinds[i] = "rows"
        elif shape and len(shape) > 1 and p.meta.get(BATCH_DIM) == 1:
            kinds[i] = "columns"
        elif shape and batch in shape[1:]:
            raise InputError(
                f"input {p.meta.get(INPUT_PATH, p.name)} has shape {tuple(shape)}: its batch dimension is "
                "past dim 1, so it cannot be split by sample automatically",
                "give the model batch-major inputs (or batch on dim 1), or split the batch yourself",
            )
        else:
            kinds[i] = "constant"
    return BatchLayout(tuple(kinds), tuple(partner), tuple(last), batch)
