"""The default benchmark model: a Criteo-shaped DLRM sized so the embedding exchange dominates.

26 sparse features (one id per sample each, like Criteo's C1..C26), embedding dimension
``D = 64``, 13 dense features, a bottom MLP 13 -> 128 -> 64, the DLRM dot interaction over the 27
vectors and a small top MLP 415 -> 64 -> 1. The tables are short (2,000 rows) because the number of
rows changes neither the exchanged bytes nor the exchange time, only memory and the optimizer step;
the dense part is small (about 37 K parameters, 150 KB of gradients) so that its all-reduce and the
compute of 8 ranks on 2 cores stay well below the exchange (with a per-rank batch of 1,024 the
flat baseline moves about 13.6 MB of embeddings per host and direction per step, ~110 ms at 1 Gbit/s).

Multi-hot variant: ``ids_per_feature`` > 1 gives every feature a bag of that many ids per sample
(an ``nn.EmbeddingBag`` with sum pooling over ``[B, N]`` ids) and ``zipf`` > 0 draws the ids from a
Zipf law (:mod:`.id_workload`); the bench's ``--ids-per-feature`` / ``--zipf`` set them through the
environment (``DMT_BENCH_IDS_PER_FEATURE``, ``DMT_BENCH_ZIPF``), which every rank inherits.

MODEL_SPEC: ``benchmarks.emulated.model:factory``. :func:`torchrec_factory` builds the same model
with a TorchRec ``EmbeddingBagCollection`` (sum pooling of one id = the same lookup) for the
TorchRec DMP baseline.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["BenchDLRM", "factory", "NUM_SPARSE", "EMBEDDING_DIM", "ROWS", "NUM_DENSE", "feature_names"]

NUM_SPARSE = 26
EMBEDDING_DIM = 64
ROWS = 2000
NUM_DENSE = 13
MODEL_SPEC = "benchmarks.emulated.model:factory"


def feature_names(n: int = NUM_SPARSE) -> list[str]:
    return [f"C{i + 1}" for i in range(n)]


class DenseArch(nn.Module):
    """Bottom MLP, dot interaction and top MLP: everything but the embeddings."""

    def __init__(self, num_sparse: int, dim: int):
        super().__init__()
        self.bottom = nn.Sequential(nn.Linear(NUM_DENSE, 128), nn.ReLU(), nn.Linear(128, dim), nn.ReLU())
        f = num_sparse + 1
        rows_i, cols_i = torch.triu_indices(f, f, offset=1)
        self.register_buffer("rows_i", rows_i, persistent=False)
        self.register_buffer("cols_i", cols_i, persistent=False)
        self.top = nn.Sequential(nn.Linear(dim + f * (f - 1) // 2, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, dense: torch.Tensor, embs: list[torch.Tensor]) -> torch.Tensor:
        x = self.bottom(dense)
        z = torch.stack([x] + embs, dim=1)
        inter = torch.bmm(z, z.transpose(1, 2))[:, self.rows_i, self.cols_i]
        return self.top(torch.cat([x, inter], dim=1))


class BenchDLRM(nn.Module):
    def __init__(self, num_sparse: int = NUM_SPARSE, dim: int = EMBEDDING_DIM, rows: int = ROWS,
                 ids_per_feature: int = 1):
        super().__init__()
        self.names = feature_names(num_sparse)
        table = (lambda: nn.Embedding(rows, dim)) if ids_per_feature == 1 else \
            (lambda: nn.EmbeddingBag(rows, dim, mode="sum"))
        self.tables = nn.ModuleDict({n: table() for n in self.names})
        for t in self.tables.values():  # TorchRec's (and DLRM's) table init: U(±1/sqrt(rows)), not N(0, 1):
            bound = rows ** -0.5  # 64-wide N(0, 1) rows give dot products of spread 8 that swamp the top MLP
            nn.init.uniform_(t.weight, -bound, bound)
        self.dense_arch = DenseArch(num_sparse, dim)

    def forward(self, dense: torch.Tensor, sparse: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.dense_arch(dense, [self.tables[n](sparse[n]) for n in self.names])


def make_inputs(batch_size: int, seed: int, num_sparse: int = NUM_SPARSE, rows: int = ROWS,
                ids_per_feature: int = 1, zipf: float = 0.0):
    g = torch.Generator().manual_seed(seed + 1)
    dense = torch.rand(batch_size, NUM_DENSE, generator=g)
    if ids_per_feature == 1 and zipf <= 0:
        sparse = {n: torch.randint(0, rows, (batch_size,), generator=g) for n in feature_names(num_sparse)}
        return dense, sparse
    from benchmarks.emulated.id_workload import zipf_ids

    shape = (batch_size,) if ids_per_feature == 1 else (batch_size, ids_per_feature)
    sparse = {n: zipf_ids(shape, rows, zipf, g, table_seed=i) for i, n in enumerate(feature_names(num_sparse))}
    return dense, sparse


def factory(batch_size: int = 64, seed: int = 0, num_sparse: int = NUM_SPARSE, dim: int = EMBEDDING_DIM,
            rows: int = ROWS, ids_per_feature: int | None = None, zipf: float | None = None):
    """Returns ``(model, (dense [B, 13], {"C1".."C26": LongTensor[B] or [B, ids_per_feature]}))``.

    ``ids_per_feature`` / ``zipf`` default to ``DMT_BENCH_IDS_PER_FEATURE`` / ``DMT_BENCH_ZIPF`` (1, 0)."""
    import os

    n = int(os.environ.get("DMT_BENCH_IDS_PER_FEATURE", "1")) if ids_per_feature is None else ids_per_feature
    s = float(os.environ.get("DMT_BENCH_ZIPF", "0")) if zipf is None else zipf
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BenchDLRM(num_sparse, dim, rows, n)
    return model, make_inputs(batch_size, seed, num_sparse, rows, n, s)


class TorchRecDLRM(nn.Module):
    """The same model with a TorchRec EmbeddingBagCollection (built on the meta device for DMP)."""

    def __init__(self, num_sparse: int = NUM_SPARSE, dim: int = EMBEDDING_DIM, rows: int = ROWS,
                 device: torch.device | str = "meta"):
        super().__init__()
        from torchrec import EmbeddingBagCollection, EmbeddingBagConfig

        self.names = feature_names(num_sparse)
        self.ebc = EmbeddingBagCollection(
            tables=[EmbeddingBagConfig(name=f"t_{n}", embedding_dim=dim, num_embeddings=rows, feature_names=[n])
                    for n in self.names],
            device=torch.device(device))
        self.dense_arch = DenseArch(num_sparse, dim)

    def forward(self, dense: torch.Tensor, kjt) -> torch.Tensor:
        pooled = self.ebc(kjt).to_dict()
        return self.dense_arch(dense, [pooled[n] for n in self.names])


def to_kjt(sparse: dict[str, torch.Tensor]):
    """One id per sample per feature as a KeyedJaggedTensor."""
    from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

    keys = list(sparse)
    values = torch.cat([sparse[k] for k in keys])
    lengths = torch.ones(values.numel(), dtype=torch.int32)
    return KeyedJaggedTensor.from_lengths_sync(keys=keys, values=values, lengths=lengths)
