"""Synthetic CTR data with planted feature groups and known ground truth.

`F = num_groups * group_size` categorical features (cardinality `cardinality`) are split into
planted groups by a seeded permutation (so feature order says nothing about the groups). Per
sample and group a latent cluster `z_g` is drawn; each feature of the group takes a value from
`z_g`'s block with probability `correlation`, else a uniform value, so features of one group
co-vary. The label depends on interactions *inside* groups only, plus a small dense effect and
noise:

    logit = scale * standardize(sum_g sum_{i<j in g} <u_i[x_i], u_j[x_j]>) + dense_weight * <v, dense> + bias
    y ~ Bernoulli(sigmoid(logit))

with random latent tables `u_f: [cardinality, rank]`. With `shared_latent = s > 0` the values of one
cluster block share most of their latent vector (`u_f[x] = sqrt(s) * w_f[block(x)] + sqrt(1 - s) * e_f[x]`),
so a large vocabulary (thousands of ids per feature) stays learnable from tens of thousands of samples:
without it every id's vector is independent and a model must see each id many times to learn anything. A model that sees each group together can
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
                 scale: float = 2.0, dense_weight: float = 0.3, seed: int = 0,
                 shared_latent: float = 0.0) -> CTRData:
    """A planted CTR data set; `data.groups` holds the true feature groups (see the module docstring)."""
    if not 0.0 <= shared_latent <= 1.0:
        raise InputError(f"shared_latent must be in [0, 1], got {shared_latent}",
                         "0 keeps every id's latent vector independent; e.g. 0.9 shares 90 % within a block")
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
    if shared_latent > 0:  # own generator: shared_latent=0 draws exactly the data it always drew
        latent = _share_within_blocks(latent, value_perm, clusters, block, shared_latent, seed)
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


def _share_within_blocks(latent: list, value_perm: list, clusters: int, block: int, share: float,
                         seed: int) -> list:
    """Each feature's latent table with the ids of one cluster block close to a common vector.

    A value `v` of feature `f` was drawn as `value_perm[f][i]` from pre-permutation index `i`, whose
    block is `i // block`; its vector becomes `sqrt(share) * w[block] + sqrt(1 - share) * u[v]`.
    """
    g = torch.Generator().manual_seed(10_007 + seed)
    out = []
    for u, perm in zip(latent, value_perm):
        w = torch.randn(clusters, u.shape[1], generator=g) / u.shape[1] ** 0.5
        pre = torch.argsort(perm)  # pre-permutation index of every value
        blocks = (pre // block).clamp_max(clusters - 1)
        out.append(share ** 0.5 * w[blocks] + (1 - share) ** 0.5 * u)
    return out
