"""The categorical fields of a fuzzer model in one lookup style (tests/fuzz_models.py): `[B, F]` ids -> `[B, F, D]`.

Styles: a table per field (list, ModuleDict, plain dict, shared, EmbeddingBag of one id, `x[..., i]`,
picks along the column dim in other spellings, ids through a constant remap with the columns
reordered by a constant index buffer), one table with offsets (a buffer, a Python list, a numpy
array, computed in `forward`, a gather through consecutive rows, imputed missing ids, the id matrix
flattened before the lookup) or pre-offset ids, `F.embedding` of parameters, and parameter tables
read by indexing (`W[ids]`, `index_select`, `W[x + offsets]`) or as one-hot products.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

D = 8

LOOKUPS = ("per_field", "module_dict", "offsets_buffer", "offsets_list", "offsets_numpy", "offsets_forward",
           "pre_offset", "shared", "bag_2d", "functional", "per_field_ellipsis", "range_gather", "plain_dict_cast",
           "imputed_offsets", "param_index", "param_offsets", "column_spellings", "flattened_offsets", "remapped", "one_hot")

class Lookups(nn.Module):
    """The categorical fields in one lookup style: [B, F] ids -> [B, F, D]."""

    def __init__(self, style: str, dims: list[int], inplace: bool = False):
        super().__init__()
        self.style, self.dims = style, dims
        if inplace:  # pytorch_tabular's SharedEmbeddings: part of each lookup output overwritten in place
            self.shared = nn.Parameter(torch.full((2,), 0.1))
        starts = [0] + list(np.cumsum(dims)[:-1])
        if style in ("per_field", "shared", "per_field_ellipsis", "column_spellings", "remapped"):
            self.tables = nn.ModuleList(nn.Embedding(max(dims) if style == "shared" else d, D) for d in dims)
            if style == "remapped":  # a vocabulary remap buffer and a buffer of column indices
                self.register_buffer("remap", torch.arange(max(dims)))
                self.register_buffer("reverse", torch.arange(len(dims)).flip(0))
        elif style == "plain_dict_cast":  # mlgb's SparseEmbeddingLayer: a plain dict, so never registered
            self.plain = {f"{i}": nn.Embedding(d, D) for i, d in enumerate(dims)}
        elif style == "module_dict":
            self.tables = nn.ModuleDict({f"f{i}": nn.Embedding(d, D) for i, d in enumerate(dims)})
        elif style == "bag_2d":
            self.tables = nn.ModuleList(nn.EmbeddingBag(d, D, mode="sum") for d in dims)
        elif style in ("functional", "param_index", "one_hot"):
            self.weights = nn.ParameterList(nn.Parameter(torch.randn(d, D)) for d in dims)
        elif style == "param_offsets":  # one parameter matrix for every field, read at ids + offsets
            self.weight = nn.Parameter(torch.randn(sum(dims), D))
            self.register_buffer("offsets", torch.tensor([int(s) for s in starts]))
        elif style == "imputed_offsets":  # PyTorch Frame's EmbeddingEncoder: row 0 for a missing id
            self.table = nn.Embedding(sum(dims) + 1, D, padding_idx=0)
            self.register_buffer("fill", torch.tensor([d // 2 for d in dims]))
            self.register_buffer("offsets", torch.tensor([int(s) for s in starts]))
        else:
            # range_gather: one more row, read with a constant id (a learned token added to every field)
            self.table = nn.Embedding(sum(dims) + (style == "range_gather"), D)
            if style == "range_gather":
                self.register_buffer("index", torch.arange(sum(dims)))
                self.register_buffer("const_ids", torch.tensor([sum(dims)]))
            self.offsets_list = [int(s) for s in starts]
            self.offsets_np = np.array(starts, dtype=np.int64)
            self.register_buffer("offsets", torch.tensor(self.offsets_list))

    def forward(self, x):
        return self._looked(x)

    def _w(self, v):
        """A lookup output, changed in place when the recipe says so."""
        if hasattr(self, "shared"):
            v[..., :2] += self.shared
        return v

    def _looked(self, x):
        s, n, w = self.style, len(self.dims), self._w
        if s == "per_field":
            return torch.stack([w(t(x[:, i])) for i, t in enumerate(self.tables)], 1)
        if s == "per_field_ellipsis":  # rtdl's CategoricalEmbeddings: x[..., i], stacked on dim -2
            return torch.stack([w(t(x[..., i])) for i, t in enumerate(self.tables)], dim=-2)
        if s == "plain_dict_cast":  # mlgb: ids cast by torch.as_tensor, fields picked as x[:, i, ...]
            x = torch.as_tensor(x, dtype=torch.int32, device=x.device)
            return torch.stack([w(self.plain[f"{i}"](x[:, i, ...])) for i in range(n)], 1)
        if s == "range_gather":  # tab-transformer-pytorch's Embed: offsets, a gather through consecutive rows
            return w(self.table(self.index[x + self.offsets])) + self.table(self.const_ids)
        if s == "imputed_offsets":  # missing ids (-1) imputed per column, offsets + 1, then x[missing] = 0
            x = torch.where(x == -1, self.fill, x)
            missing = x < 0
            x = x + self.offsets + 1
            x[missing] = 0
            return w(self.table(x))
        if s == "shared":  # fields 0 and 1 read the same table
            return torch.stack([w(self.tables[0 if i == 1 else i](x[:, i])) for i in range(n)], 1)
        if s == "module_dict":
            return torch.stack([w(self.tables[f"f{i}"](x[:, i])) for i in range(n)], 1)
        if s == "bag_2d":
            return torch.stack([w(t(x[:, i:i + 1])) for i, t in enumerate(self.tables)], 1)
        if s == "functional":
            return torch.stack([w(F.embedding(x[:, i], t)) for i, t in enumerate(self.weights)], 1)
        if s == "column_spellings":  # field i picked along the column dim: x.T[i], narrow, chunk, unbind(-1)
            picks = (lambda i: x.T[i], lambda i: x.narrow(1, i, 1).squeeze(1),
                     lambda i: torch.chunk(x, n, dim=1)[i].squeeze(1), lambda i: x.unbind(-1)[i])
            return torch.stack([w(t(picks[i % 4](i))) for i, t in enumerate(self.tables)], 1)
        if s == "param_index":  # plain parameter tables read at ids: W[ids] and W.index_select(0, ids)
            return torch.stack([w(t[x[:, i]] if i % 2 == 0 else t.index_select(0, x[:, i]))
                                for i, t in enumerate(self.weights)], 1)
        if s == "one_hot":  # a parameter table per field read as a one-hot product
            return torch.stack([w(F.one_hot(x[:, i], t.shape[0]).float() @ t) for i, t in enumerate(self.weights)], 1)
        if s == "remapped":  # ids through a constant remap, columns reordered by a constant index buffer
            xr = self.remap[x].index_select(1, self.reverse)
            return torch.stack([w(self.tables[i](xr[:, n - 1 - i])) for i in range(n)], 1)
        if s == "flattened_offsets":  # the id matrix flattened before the one lookup, rows side by side
            return w(self.table((x + self.offsets).view(-1)).view(x.size(0), -1).view(x.size(0), n, D))
        if s == "param_offsets":
            return w(self.weight[x + self.offsets])
        if s == "offsets_buffer":
            return w(self.table(x + self.offsets))
        if s == "offsets_list":
            return w(self.table(x + x.new_tensor(self.offsets_list).unsqueeze(0)))
        if s == "offsets_numpy":
            return w(self.table(x + torch.as_tensor(self.offsets_np, device=x.device)))
        if s == "offsets_forward":
            return w(self.table(x + torch.tensor([0] + self.dims[:-1], device=x.device).cumsum(0)))
        return w(self.table(x))  # pre_offset: the data pipeline shifted each column into its own rows
