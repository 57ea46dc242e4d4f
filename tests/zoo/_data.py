"""Input-generation helpers shared by the zoo factories (not model code).

Every factory builds its parameters under ``seeded(seed)`` (a forked global RNG, so the
caller's RNG state is untouched) and draws its inputs from ``gen(seed)``.
"""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(10_000 + seed)


def ids(g: torch.Generator, rows: int, *shape: int) -> torch.Tensor:
    return torch.randint(0, rows, shape, generator=g, dtype=torch.long)


def dense(g: torch.Generator, batch_size: int, n: int) -> torch.Tensor:
    return torch.randn(batch_size, n, generator=g)


def jagged(g: torch.Generator, rows: int, batch_size: int, lo: int = 1, hi: int = 3):
    """(values, offsets) for one feature with lo..hi ids per bag (EmbeddingBag layout)."""
    lengths = torch.randint(lo, hi + 1, (batch_size,), generator=g)
    values = torch.randint(0, rows, (int(lengths.sum()),), generator=g)
    offsets = torch.zeros(batch_size, dtype=torch.long)
    offsets[1:] = torch.cumsum(lengths, 0)[:-1]
    return values, offsets


def kjt(g: torch.Generator, keys, rows, batch_size: int, lo: int = 1, hi: int = 3, weighted=False):
    """A torchrec KeyedJaggedTensor, key-major lengths, lo..hi ids per bag."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    rows = [rows] * len(keys) if isinstance(rows, int) else list(rows)
    lengths, values = [], []
    for r in rows:
        ln = torch.randint(lo, hi + 1, (batch_size,), generator=g)
        lengths.append(ln)
        values.append(torch.randint(0, r, (int(ln.sum()),), generator=g))
    values = torch.cat(values)
    weights = torch.rand(values.numel(), generator=g) if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(
        keys=list(keys), values=values, lengths=torch.cat(lengths).to(torch.int32), weights=weights
    )
