"""Layers rebuilt for hierarchical feed: the same layer type for a new width, seeded from the old one.

`rebuild_linear` / `rebuild_norm` make a fresh layer (PyTorch's default init, from the global RNG)
and copy the trained values of the input columns / output rows that still exist, given as
(new index, old index, length) runs. `pair_indices` recomputes a triu/tril index buffer for a new
number of vectors. `column_runs` finds which columns of a new layer input are columns of the old
one, from values. Nothing here knows about graphs.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from dmt_compile.ir.feed import expand_runs

__all__ = ["REBUILDABLE", "rebuild_linear", "rebuild_norm", "pair_indices", "match_pair_indices", "column_runs"]

#: module types hierarchical feed can rebuild for a new width (exact types: subclasses may hold more state)
REBUILDABLE = {nn.Linear: "linear", nn.LayerNorm: "layer_norm", nn.BatchNorm1d: "batch_norm"}

Runs = Sequence[tuple[int, int, int]]


def _index(runs: Runs) -> tuple[torch.Tensor, torch.Tensor]:
    new, old = expand_runs(tuple(runs))
    return torch.tensor(new, dtype=torch.long), torch.tensor(old, dtype=torch.long)


def _identity(n: int) -> list[tuple[int, int, int]]:
    return [(0, 0, n)]


def rebuild_linear(old: nn.Linear, in_features: int, out_features: int, in_runs: Runs | None,
                   out_runs: Runs | None) -> nn.Linear:
    """`nn.Linear(in_features, out_features)` with PyTorch's default init, then the old weights of
    the (row, column) pairs that still exist copied in. `None` runs mean "that side is unchanged"
    (identity); empty runs mean "nothing still exists" (all default init)."""
    w = old.weight
    new = nn.Linear(in_features, out_features, bias=old.bias is not None, device=w.device, dtype=w.dtype)
    rows_new, rows_old = _index(_identity(out_features) if out_runs is None else out_runs)
    cols_new, cols_old = _index(_identity(in_features) if in_runs is None else in_runs)
    with torch.no_grad():
        if len(rows_new) and len(cols_new):
            new.weight[rows_new.unsqueeze(1), cols_new] = w[rows_old.unsqueeze(1), cols_old]
        if old.bias is not None and len(rows_new):
            new.bias[rows_new] = old.bias[rows_old]
    new.weight.requires_grad_(w.requires_grad)
    if old.bias is not None:
        new.bias.requires_grad_(old.bias.requires_grad)
    new.train(old.training)
    return new


def rebuild_norm(old: nn.Module, width: int, runs: Runs) -> nn.Module:
    """A LayerNorm over `[width]` or BatchNorm1d of `width` features; the entries that still exist
    keep their affine parameters (and running statistics), the others start at 1 / 0 (mean 0, var 1)."""
    ref = next(iter(old.parameters()), None)
    kw = {"device": ref.device, "dtype": ref.dtype} if ref is not None else {}
    if isinstance(old, nn.LayerNorm):
        new = nn.LayerNorm(width, eps=old.eps, elementwise_affine=old.elementwise_affine,
                           bias=old.bias is not None, **kw)
        tensors = ("weight", "bias")
    else:
        new = nn.BatchNorm1d(width, eps=old.eps, momentum=old.momentum, affine=old.affine,
                             track_running_stats=old.track_running_stats, **kw)
        tensors = ("weight", "bias", "running_mean", "running_var")
        if old.num_batches_tracked is not None:
            new.num_batches_tracked.copy_(old.num_batches_tracked)
    idx_new, idx_old = _index(runs)
    with torch.no_grad():
        for name in tensors:
            src, dst = getattr(old, name, None), getattr(new, name, None)
            if src is not None and dst is not None and len(idx_new):
                dst[idx_new] = src[idx_old]
    for p_old, p_new in zip(old.parameters(), new.parameters()):
        p_new.requires_grad_(p_old.requires_grad)
    new.train(old.training)
    return new


def pair_indices(kind: str, n: int, offset: int, like: torch.Tensor) -> torch.Tensor:
    """`torch.triu_indices(n, n, offset)` (or tril) with the dtype and device of `like`."""
    fn = torch.triu_indices if kind == "triu_indices" else torch.tril_indices
    return fn(n, n, offset).to(device=like.device, dtype=like.dtype)


def match_pair_indices(rows: torch.Tensor, cols: torch.Tensor, n: int) -> tuple[str, int] | None:
    """(kind, offset) when `(rows, cols)` are exactly `torch.triu_indices(n, n, offset)` or tril; else None."""
    if rows.dim() != 1 or rows.shape != cols.shape or rows.is_floating_point():
        return None
    if rows.numel() == 0:
        return None
    rows, cols = rows.cpu().long(), cols.cpu().long()
    diff = cols - rows
    # triu(n, n, k) holds exactly the pairs with j - i >= k, tril those with j - i <= k
    for kind, fn, offset in (("triu_indices", torch.triu_indices, int(diff.min())),
                             ("tril_indices", torch.tril_indices, int(diff.max()))):
        if -n < offset < n:
            ref = fn(n, n, offset)
            if ref.shape[1] == rows.numel() and torch.equal(ref[0], rows) and torch.equal(ref[1], cols):
                return kind, offset
    return None


def column_runs(new: torch.Tensor, old: torch.Tensor | None, axis: int) -> tuple[tuple[int, int, int], ...]:
    """(new index, old index, length) runs of the slices along `axis` of `new` that equal a slice of `old`.

    A slice matches when it equals (to 1e-5, relative) a slice of `old` that is not constant over
    the samples (zero slices say nothing about which feature they are); ties go to the first
    unused old slice after the previous match, so order is kept.
    """
    if not isinstance(old, torch.Tensor) or new.dim() != old.dim():
        return ()
    a, b = new.detach().movedim(axis, 0), old.detach().movedim(axis, 0)
    if a.shape[1:] != b.shape[1:] or a[0].numel() == 0:
        return ()
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    informative = (b.amax(1) != b.amin(1)) if b.shape[1] > 1 else b[:, 0] != 0
    cand = informative.nonzero().flatten()
    if cand.numel() == 0:
        return ()
    keys, order = b[cand, 0].sort()
    cand = cand[order]
    tol = 1e-5 * (1 + a[:, 0].abs())
    lo = torch.searchsorted(keys, a[:, 0] - tol)
    hi = torch.searchsorted(keys, a[:, 0] + tol, right=True)
    pairs, used, last = [], set(), -1
    for j in (hi > lo).nonzero().flatten().tolist():
        options = [i for i in cand[lo[j]:hi[j]].tolist() if i not in used
                   and bool(((a[j] - b[i]).abs() <= 1e-5 * (1 + b[i].abs())).all())]
        if options:
            i = min((i for i in options if i > last), default=min(options))
            pairs.append((j, i))
            used.add(i)
            last = i
    runs: list[list[int]] = []
    for j, i in pairs:
        if runs and runs[-1][0] + runs[-1][2] == j and runs[-1][1] + runs[-1][2] == i:
            runs[-1][2] += 1
        else:
            runs.append([j, i, 1])
    return tuple(tuple(r) for r in runs)
