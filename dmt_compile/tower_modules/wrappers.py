"""The modules around a core: identity towers, the compressing wrapper, decoders and direct feed.

`CompressingTowerModule` flattens the tower's compressed lookups into one row per sample, runs the
core and passes the other lookups through. After the exchange either `TowerDecoder` restores the
original tensors, or `DirectFeed` cuts the compressed row into embedding-shaped pieces the
interaction consumes directly.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from dmt_compile.tower_modules.fan_in import FanInLinear

__all__ = ["IdentityTowerModule", "CompressingTowerModule", "TowerDecoder", "DirectFeed", "pair_as_projection"]


def _flat(x) -> torch.Tensor:
    """One row per sample; the width is explicit so an empty batch (0 samples) reshapes too."""
    if type(x).__name__ == "KeyedTensor":
        x = x.values()
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))


class IdentityTowerModule(nn.Module):
    """Returns the tower's lookups unchanged: SPTT without compression is semantic-preserving."""

    def __init__(self, num_inputs: int):
        super().__init__()
        self.num_inputs = num_inputs

    def forward(self, *xs):
        return tuple(xs)

    def extra_repr(self) -> str:
        return f"num_inputs={self.num_inputs}"


class CompressingTowerModule(nn.Module):
    """Flatten + concatenate the compressed lookups, run the core; pass the others through."""

    def __init__(self, core: nn.Module, compress: Sequence[bool]):
        super().__init__()
        self.core = core
        self.compress = tuple(bool(c) for c in compress)

    def forward(self, *xs):
        picked = [_flat(x) for x, c in zip(xs, self.compress) if c]
        y = self.core(picked)  # every core takes the lookups themselves (see `cores`)
        return (y, *[x for x, c in zip(xs, self.compress) if not c])

    def extra_repr(self) -> str:
        return f"compress={list(self.compress)}"


def _slices(z: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    """`torch.split(z, widths, dim=1)` as one `narrow` view per part.

    The parts stand for lookup outputs, which model code may modify in place (`out += shared_embed`,
    `out[:, :k] = shared_embed`: pytorch_tabular's SharedEmbeddings); autograd refuses an in-place
    change of a view made by a function that returns several views (split, unbind), and accepts it
    on a view made alone."""
    starts = [0]
    for w in widths[:-1]:
        starts.append(starts[-1] + w)
    return [z.narrow(1, a, w) for a, w in zip(starts, widths)]


class TowerDecoder(nn.Module):
    """After the exchange: `Linear(o_t -> sum widths)`, split, reshape to the original tensors."""

    def __init__(self, in_width: int, shapes: Sequence[tuple[int, ...]], keyed: Sequence | None = None):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.widths = [math.prod(s) for s in self.shapes]
        # per output: None for a tensor, (keys, length_per_key) to rebuild a torchrec KeyedTensor
        self.keyed = list(keyed) if keyed is not None else [None] * len(self.shapes)
        self.proj = FanInLinear(in_width, sum(self.widths))

    def forward(self, y: torch.Tensor):
        z = self.proj(y)
        parts = _slices(z, self.widths)
        out = []
        for p, s, k in zip(parts, self.shapes, self.keyed):
            if k is None:
                out.append(p.reshape(p.shape[0], *s))
            else:
                from torchrec.sparse.jagged_tensor import KeyedTensor

                out.append(KeyedTensor(keys=list(k[0]), length_per_key=list(k[1]), values=p))
        return tuple(out)

    def extra_repr(self) -> str:
        return f"shapes={self.shapes}"


class DirectFeed(nn.Module):
    """Cut the compressed row `[B, k*prod(E)]` into `k` embeddings of per-sample shape `E`."""

    def __init__(self, pieces: int, shape: Sequence[int]):
        super().__init__()
        self.pieces = pieces
        self.shape = tuple(shape)

    def forward(self, y: torch.Tensor):
        rows = y.reshape(y.shape[0], self.pieces, *self.shape)
        return tuple(rows.select(1, i) for i in range(self.pieces))  # one view each: see `_slices`

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}, shape={self.shape}"


@torch.no_grad()
def pair_as_projection(core: nn.Module, decoder: TowerDecoder) -> bool:
    """Initialise a `linear` core and its decoder as an orthogonal projection; True when it applied.

    Encoder `Q` (`[o, n]`, orthonormal rows, `o <= n`), decoder `Q^T` (effective weights of the two
    `FanInLinear`s), both biases zero: the decoder
    gives back `Q^T Q x`, the tower's embeddings projected onto a random subspace of dim `n / c` --
    at `c = 1` exactly the flat model's embeddings. Two independently initialised layers instead
    start from an unrelated function and, where the model multiplies embeddings (FM, FFM), enter
    the loss as a product of four random matrices that an optimizer's first steps throw about.
    Other cores (dot, cross, wukong) interact inside the tower and keep their own init.
    """
    proj = getattr(core, "proj", None)
    if type(core).__name__ != "LinearCore" or not isinstance(proj, FanInLinear):
        return False
    out, n = proj.weight.shape
    if tuple(decoder.proj.weight.shape) != (n, out) or out > n:
        return False
    # QR in float32 (torch has no half/bfloat16 QR on CPU), then stored in the layers' own dtype
    q = nn.init.orthogonal_(torch.empty(proj.weight.shape, dtype=torch.float32, device=proj.weight.device))
    proj.set_effective_weight(q)
    decoder.proj.set_effective_weight(q.t())
    proj.bias.zero_()
    decoder.proj.bias.zero_()
    return True
