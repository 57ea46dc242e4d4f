"""Tower Modules: dense modules that run on a tower's host before the cross-host exchange.

Every compressing Tower Module has one core: `[N, sum(in widths)] -> [N, out width]`. The
wrappers around it flatten the tower's lookups, pass uncompressed lookups through, and (after the
exchange) either restore the original tensors (`TowerDecoder`) or cut the compressed row into
embedding-shaped pieces the interaction consumes directly (`DirectFeed`).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from dmt_compile.errors import TowerModuleError

__all__ = [
    "IdentityTowerModule", "CompressingTowerModule", "TowerDecoder", "DirectFeed",
    "TOWER_MODULES", "make_core", "compressed_width",
]


def _flat(x) -> torch.Tensor:
    if type(x).__name__ == "KeyedTensor":
        x = x.values()
    return x.reshape(x.shape[0], -1)


class IdentityTowerModule(nn.Module):
    """Returns the tower's lookups unchanged: SPTT without compression is semantic-preserving."""

    def __init__(self, num_inputs: int):
        super().__init__()
        self.num_inputs = num_inputs

    def forward(self, *xs):
        return tuple(xs)

    def extra_repr(self) -> str:
        return f"num_inputs={self.num_inputs}"


class LinearCore(nn.Module):
    """`linear`: one projection of the concatenated tower embeddings, `[F_t*D] -> [F_t*D / c]`."""

    def __init__(self, in_widths: Sequence[int], out_width: int):
        super().__init__()
        self.proj = nn.Linear(sum(in_widths), out_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


Core = Callable[[Sequence[int], int], nn.Module]
TOWER_MODULES: dict[str, Core | None] = {"identity": None, "linear": LinearCore}


def make_core(name: str, in_widths: Sequence[int], out_width: int) -> nn.Module:
    if name not in TOWER_MODULES or TOWER_MODULES[name] is None:
        raise TowerModuleError(
            f"unknown compressing tower module {name!r}",
            "choose one of: " + ", ".join(sorted(TOWER_MODULES)),
        )
    return TOWER_MODULES[name](list(in_widths), out_width)


def compressed_width(width: int, compression: float, what: str) -> int:
    if width < compression:
        raise TowerModuleError(
            f"compression {compression:g} is larger than {what} (width {width})",
            f"use compression <= {width}, or fewer towers so each holds more embeddings",
        )
    return max(1, math.ceil(width / compression))


class CompressingTowerModule(nn.Module):
    """Flatten + concatenate the compressed lookups, run the core; pass the others through."""

    def __init__(self, core: nn.Module, compress: Sequence[bool]):
        super().__init__()
        self.core = core
        self.compress = tuple(bool(c) for c in compress)

    def forward(self, *xs):
        picked = [_flat(x) for x, c in zip(xs, self.compress) if c]
        y = self.core(torch.cat(picked, dim=1) if len(picked) > 1 else picked[0])
        return (y, *[x for x, c in zip(xs, self.compress) if not c])

    def extra_repr(self) -> str:
        return f"compress={list(self.compress)}"


class TowerDecoder(nn.Module):
    """After the exchange: `Linear(o_t -> sum widths)`, split, reshape to the original tensors."""

    def __init__(self, in_width: int, shapes: Sequence[tuple[int, ...]], keyed: Sequence | None = None):
        super().__init__()
        self.shapes = [tuple(s) for s in shapes]
        self.widths = [math.prod(s) for s in self.shapes]
        # per output: None for a tensor, (keys, length_per_key) to rebuild a torchrec KeyedTensor
        self.keyed = list(keyed) if keyed is not None else [None] * len(self.shapes)
        self.proj = nn.Linear(in_width, sum(self.widths))

    def forward(self, y: torch.Tensor):
        z = self.proj(y)
        parts = torch.split(z, self.widths, dim=1)
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
        return tuple(y.reshape(y.shape[0], self.pieces, *self.shape).unbind(1))

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}, shape={self.shape}"
