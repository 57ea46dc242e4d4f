"""Feature-feature affinity measured from a model's looked-up embeddings, and the feature graph.

The Tower Partitioner reads the embeddings the model produces on real samples (calibration
batches) and scores every pair of sparse features:

* `covariation` (default) — the RV coefficient of the two features' embeddings over the samples,
  `||C_ij||_F^2 / (||C_ii||_F ||C_jj||_F)` with `C` the sample cross-covariances, minus its
  expected value for independent features (finite-sample bias), clipped at 0. It is 1 when one
  embedding is a linear function of the other and ~0 for independent features; it works for any
  two widths (a dim-1 "wide" table against a D-wide embedding).
* `interaction` — how much the pairwise dot product the model can compute varies over the
  samples: `std(<e_i, e_j>) / sqrt(E||e_i||^2 E||e_j||^2)`; only for features of the same width
  (others score 0).
* `both` — the sum of the two, each scaled to a maximum of 1.

`FeatureAffinity` holds the symmetric matrix; `feature_graph` turns it into a weighted networkx
graph and `feature_graph_dot` into DOT text coloured by tower.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import networkx as nx
import torch

from dmt_compile.errors import InputError
from dmt_compile.ir.detection import Detection

__all__ = ["AFFINITY_METHODS", "FeatureAffinity", "feature_vectors", "measure_affinity", "feature_graph",
           "feature_graph_dot", "AffinityRecorder"]

log = logging.getLogger(__name__)
AFFINITY_METHODS = ("covariation", "interaction", "both")
_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
            "#9c755f", "#bab0ac")


@dataclass(frozen=True)
class FeatureAffinity:
    """Symmetric `[F, F]` affinity between sparse features (zero diagonal), and how it was measured."""

    features: tuple[str, ...]
    matrix: torch.Tensor
    method: str = "covariation"
    samples: int = 0

    def index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.features)}

    def total(self) -> float:
        """Sum of the affinity over unordered feature pairs."""
        return float(self.matrix.triu(1).sum())

    def captured(self, tower_of: Mapping[str, int]) -> float:
        """Fraction of the total affinity between features that share a tower (1.0 when no affinity)."""
        total = self.total()
        if total <= 0:
            return 1.0
        idx = self.index()
        within = 0.0
        for i, a in enumerate(self.features):
            for b in self.features[i + 1:]:
                if a in tower_of and tower_of.get(a) == tower_of.get(b):
                    within += float(self.matrix[i, idx[b]])
        return within / total

    def group_matrix(self, groups: Sequence[Sequence[str]]) -> torch.Tensor:
        """`[G, G]` affinity between feature groups (sum over their feature pairs; zero diagonal)."""
        idx = self.index()
        g = len(groups)
        member = torch.zeros(g, len(self.features), dtype=self.matrix.dtype)
        for k, feats in enumerate(groups):
            for f in feats:
                if f in idx:
                    member[k, idx[f]] = 1.0
        out = member @ self.matrix @ member.T
        out.fill_diagonal_(0.0)
        return out


def feature_vectors(lookup_outputs: Mapping[int, list], lookups: Sequence) -> dict[str, torch.Tensor]:
    """`{feature: [samples, width]}` from each lookup's outputs over the calibration batches.

    A lookup serving `k` features whose width divides by `k` (`[B, k, D]`, a KeyedTensor's values)
    is cut into `k` equal feature-major slices; otherwise every feature of it gets the whole row.
    A feature served by several lookups gets their rows concatenated.
    """
    out: dict[str, list[torch.Tensor]] = {}
    for lk in lookups:
        batches = lookup_outputs.get(lk.index) or []
        if not batches:
            continue
        try:
            rows = torch.cat([b.reshape(b.shape[0], -1).float() for b in batches], dim=0)
        except RuntimeError as exc:
            raise InputError(
                f"lookup {lk.index} ({', '.join(lk.features)}) has outputs of different widths across "
                f"calibration batches: {exc}",
                "pass calibration batches with the same structure and feature layout as example_inputs",
            ) from exc
        k = max(1, len(lk.features))
        if rows.shape[1] % k == 0 and k > 1:
            pieces = rows.reshape(rows.shape[0], k, -1).unbind(1)
        else:
            pieces = [rows] * k
        for f, p in zip(lk.features, pieces):
            out.setdefault(f, []).append(p)
    return {f: torch.cat(v, dim=1) if len(v) > 1 else v[0] for f, v in out.items()}


def _rv(a: torch.Tensor, b: torch.Tensor, caa: torch.Tensor, cbb: torch.Tensor) -> float:
    n = a.shape[0]
    cab = a.T @ b / n
    den = float(torch.linalg.matrix_norm(caa) * torch.linalg.matrix_norm(cbb))
    if den <= 1e-20:
        return 0.0
    rv = float((cab * cab).sum()) / den
    bias = float(torch.trace(caa) * torch.trace(cbb)) / (n * den)  # E[RV] for independent a, b
    return max(0.0, rv - bias)


def measure_affinity(vectors: Mapping[str, torch.Tensor], features: Sequence[str] | None = None,
                     method: str = "covariation") -> FeatureAffinity:
    """Affinity between every pair of features in `vectors` (see the module docstring)."""
    if method not in AFFINITY_METHODS:
        raise InputError(f"unknown affinity method {method!r}", "choose one of: " + ", ".join(AFFINITY_METHODS))
    names = tuple(features if features is not None else vectors)
    f = len(names)
    n = min((vectors[x].shape[0] for x in names if x in vectors), default=0)
    cov = torch.zeros(f, f, dtype=torch.float64)
    inter = torch.zeros(f, f, dtype=torch.float64)
    if n >= 2:
        centred = {x: (vectors[x][:n] - vectors[x][:n].mean(0)).double() for x in names if x in vectors}
        raw = {x: vectors[x][:n].double() for x in centred}
        own = {x: v.T @ v / n for x, v in centred.items()}
        power = {x: float((v * v).sum(1).mean()) for x, v in raw.items()}
        for i, a in enumerate(names):
            for j in range(i + 1, f):
                b = names[j]
                if a not in centred or b not in centred:
                    continue
                if method in ("covariation", "both"):
                    cov[i, j] = cov[j, i] = _rv(centred[a], centred[b], own[a], own[b])
                if method in ("interaction", "both") and raw[a].shape[1] == raw[b].shape[1]:
                    den = (power[a] * power[b]) ** 0.5
                    if den > 1e-20:
                        inter[i, j] = inter[j, i] = float((raw[a] * raw[b]).sum(1).std()) / den
    if method == "covariation":
        m = cov
    elif method == "interaction":
        m = inter
    else:
        m = cov / max(float(cov.max()), 1e-12) + inter / max(float(inter.max()), 1e-12)
    log.debug("affinity (%s) over %d samples for %d features", method, n, f)
    return FeatureAffinity(names, m, method, n)


def feature_graph(affinity: FeatureAffinity, tower_of: Mapping[str, int] | None = None,
                  min_weight: float = 0.0) -> nx.Graph:
    """Weighted feature graph: a node per feature (attribute `tower`), an edge per pair above `min_weight`."""
    g = nx.Graph()
    for f in affinity.features:
        g.add_node(f, tower=None if tower_of is None else tower_of.get(f))
    for i, a in enumerate(affinity.features):
        for j in range(i + 1, len(affinity.features)):
            w = float(affinity.matrix[i, j])
            if w > min_weight:
                g.add_edge(a, affinity.features[j], weight=w)
    return g


def _q(name: str) -> str:
    return '"' + str(name).replace("\\", "\\\\").replace('"', '\\"') + '"'


def feature_graph_dot(plan, affinity: FeatureAffinity, top_edges: int | None = None) -> str:
    """DOT text of the feature graph, nodes filled by tower, edge width ~ affinity (no pydot needed).

    `plan` is a `TowerPlan` (or anything with `.towers`). Edges between towers are dashed grey.
    `top_edges` keeps only the strongest edges (default: 3 per feature).
    """
    tower_of = {f: t for t, feats in enumerate(plan.towers) for f in feats}
    g = feature_graph(affinity, tower_of)
    edges = sorted(g.edges(data="weight"), key=lambda e: (-e[2], e[0], e[1]))
    keep = edges[: (3 * len(affinity.features) if top_edges is None else top_edges)]
    top = max((w for _, _, w in keep), default=1.0) or 1.0
    lines = ["graph feature_affinity {", '  graph [overlap=false, splines=true, label="feature affinity ('
             + affinity.method + '), coloured by tower"];', "  node [style=filled, fontcolor=white];"]
    for t, feats in enumerate(plan.towers):
        lines.append(f"  subgraph cluster_tower{t} {{ label={_q(f'tower {t}')}; color=\"{_COLOURS[t % len(_COLOURS)]}\";")
        for f in feats:
            lines.append(f"    {_q(f)} [fillcolor=\"{_COLOURS[t % len(_COLOURS)]}\"];")
        lines.append("  }")
    for f in affinity.features:
        if f not in tower_of:
            lines.append(f"  {_q(f)} [fillcolor=\"#999999\"];")
    for a, b, w in keep:
        same = tower_of.get(a) is not None and tower_of.get(a) == tower_of.get(b)
        style = "solid" if same else "dashed"
        colour = "#333333" if same else "#aaaaaa"
        lines.append(f"  {_q(a)} -- {_q(b)} [penwidth={0.5 + 4.0 * w / top:.2f}, style={style}, "
                     f"color=\"{colour}\", label=\"{w:.3g}\"];")
    lines.append("}")
    return "\n".join(lines) + "\n"


class AffinityRecorder:
    """A `transform(..., callback=...)` hook that measures the affinity right after `detect`.

    It uses the calibration batches given to `transform` (else the example inputs);
    `recorder.affinity` is then ready for `feature_graph_dot(dmt.plan, recorder.affinity)`.
    """

    def __init__(self, method: str = "covariation"):
        self.method = method
        self.affinity: FeatureAffinity | None = None

    def __call__(self, index, name, gm, ctx) -> None:
        if name != "detect":
            return
        from dmt_compile.partition.calibration import collect_lookup_outputs

        detection = ctx.get(Detection)
        flat = list(ctx.calibration) or [ctx.flat_inputs]
        outputs = collect_lookup_outputs(gm, detection, flat)
        vectors = feature_vectors(outputs, detection.lookups)
        self.affinity = measure_affinity(vectors, detection.features, self.method)
