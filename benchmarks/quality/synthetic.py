"""Synthetic CTR data with planted feature groups and known ground truth.

`F = num_groups * group_size` categorical features (cardinality `cardinality`) are split into
planted groups by a seeded permutation (so feature order says nothing about the groups). Per
sample and group a latent cluster `z_g` is drawn; each feature of the group takes a value from
`z_g`'s block with probability `correlation`, else a uniform value, so features of one group
co-vary. The label depends on interactions *inside* groups only, plus a small dense effect and
noise:

    logit = scale * standardize(sum_g sum_{i<j in g} <u_i[x_i], u_j[x_j]>) + dense_weight * <v, dense> + bias
    y ~ Bernoulli(sigmoid(logit))

with random latent tables `u_f: [cardinality, rank]`. A model that sees each group together can
compute the group's interactions; one that only sees groups through per-tower compressed codes
needs `rank` numbers per feature whose partners live in other towers.
"""
from __future__ import annotations

import torch

from dmt_compile.errors import InputError
from benchmarks.quality.data import CTRData

__all__ = ["make_planted"]


def make_planted(samples: int = 60_000, *, num_groups: int = 4, group_size: int = 4, cardinality: int = 50,
                 rank: int = 8, clusters: int = 10, correlation: float = 0.6, num_dense: int = 4,
                 scale: float = 2.0, dense_weight: float = 0.3, seed: int = 0) -> CTRData:
    """A planted CTR data set; `data.groups` holds the true feature groups (see the module docstring)."""
    if num_groups < 1 or group_size < 1 or cardinality < clusters or samples < 2:
        raise InputError(
            f"bad planted-data sizes (groups={num_groups}, group_size={group_size}, cardinality={cardinality}, "
            f"clusters={clusters}, samples={samples})",
            "use at least one group of one feature, cardinality >= clusters and at least 2 samples",
        )
    g = torch.Generator().manual_seed(seed)
    f = num_groups * group_size
    names = tuple(f"f{i:02d}" for i in range(f))
    perm = torch.randperm(f, generator=g).tolist()
    groups = tuple(tuple(sorted(names[perm[k * group_size + j]] for j in range(group_size)))
                   for k in range(num_groups))
    block = cardinality // clusters
    sparse = torch.empty(samples, f, dtype=torch.long)
    # the world's hidden structure (tables, value permutations) is fixed by `seed` too
    latent = [torch.randn(cardinality, rank, generator=g) / rank ** 0.5 for _ in range(f)]
    value_perm = [torch.randperm(cardinality, generator=g) for _ in range(f)]
    score = torch.zeros(samples)
    index = {n: i for i, n in enumerate(names)}
    for members in groups:
        z = torch.randint(0, clusters, (samples,), generator=g)
        cols = [index[m] for m in members]
        for c in cols:
            tied = torch.rand(samples, generator=g) < correlation
            in_block = z * block + torch.randint(0, block, (samples,), generator=g)
            uniform = torch.randint(0, cardinality, (samples,), generator=g)
            sparse[:, c] = value_perm[c][torch.where(tied, in_block, uniform)]
        for a in range(len(cols)):
            for b in range(a + 1, len(cols)):
                ia, ib = cols[a], cols[b]
                score += (latent[ia][sparse[:, ia]] * latent[ib][sparse[:, ib]]).sum(1)
    score = (score - score.mean()) / score.std().clamp_min(1e-6)
    dense = torch.randn(samples, num_dense, generator=g)
    v = torch.randn(num_dense, generator=g) / max(num_dense, 1) ** 0.5
    logit = scale * score + dense_weight * (dense @ v)
    labels = (torch.rand(samples, generator=g) < torch.sigmoid(logit)).float()
    return CTRData(f"planted(g={num_groups}x{group_size}, seed={seed})", dense, sparse, labels, names,
                   (cardinality,) * f, groups)
