"""`PairedTraining`: a QualityCheck over the user's labelled batches.

Protocol per seed s (paired): the flat model and each candidate (built from the same weights by
`build(candidate)`, new Tower-Module weights drawn from seed s) train on the same first 80 % of
the batches, in the same seed-s order, with Adam
and binary cross-entropy on the model's first output, `epochs` times; both are then scored on the
last 20 % (ROC AUC and log-loss). ΔAUC / Δlog-loss are per-seed differences, summarised as mean
and sample standard deviation. Cost: (1 + candidates) x seeds x epochs x training batches steps.
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from dmt_compile.errors import InputError
from dmt_compile.strategy.candidate import Candidate
from dmt_compile.strategy.quality_risk import Progress, QualityEstimate

__all__ = ["PairedTraining", "roc_auc"]


def roc_auc(labels: torch.Tensor, scores: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U, average ranks over ties); 0.5 with one class."""
    y, s = labels.reshape(-1).double(), scores.reshape(-1).double()
    pos = float(y.sum())
    neg = y.numel() - pos
    if pos == 0 or neg == 0:
        return 0.5
    uniq, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    ranks = (ends - (counts.double() - 1) / 2)[inverse]
    return (float(ranks[y > 0.5].sum()) - pos * (pos + 1) / 2) / (pos * neg)


def _logits(out: Any) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out.reshape(-1)


@dataclass
class PairedTraining:
    """QualityCheck on `batches` = [(inputs tuple, labels), ...] (module docstring)."""

    model: torch.nn.Module
    batches: Sequence[tuple[tuple, torch.Tensor]]
    build: Callable[[Candidate, torch.nn.Module], torch.nn.Module] = field(repr=False)
    seeds: int = 3
    epochs: int = 1
    lr: float = 1e-3
    name: str = "calibration data"

    def __post_init__(self) -> None:
        if len(self.batches) < 5:
            raise InputError(f"quality data has {len(self.batches)} batches; paired training needs at least 5 "
                             "(80 % to train, 20 % to score)", "pass a few hundred (inputs, labels) batches")
        for i, b in enumerate(self.batches):
            if not (isinstance(b, (tuple, list)) and len(b) == 2 and isinstance(b[1], torch.Tensor)):
                raise InputError(f"quality batch {i} is not an (inputs, labels) pair",
                                 "pass quality_data=[((dense, sparse), labels), ...]")
        cut = max(1, int(len(self.batches) * 0.8))
        self._train, self._test = list(self.batches[:cut]), list(self.batches[cut:])

    def cost(self, candidates: Sequence[Candidate]) -> str:
        steps = (1 + len(candidates)) * self.seeds * self.epochs * len(self._train)
        return (f"paired training on {self.name}: {1 + len(candidates)} models (flat + {len(candidates)}) x "
                f"{self.seeds} seeds x {self.epochs} epoch(s) x {len(self._train)} batches = {steps} steps")

    def _run(self, model: torch.nn.Module, seed: int) -> tuple[float, float]:
        torch.manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        model.train()
        for epoch in range(self.epochs):
            order = torch.randperm(len(self._train), generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            for inputs, y in (self._train[i] for i in order.tolist()):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(_logits(model(*inputs)), y.float().reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            z = torch.cat([_logits(model(*inputs)) for inputs, _ in self._test])
        y = torch.cat([t.float().reshape(-1) for _, t in self._test])
        return roc_auc(y, z), float(torch.nn.functional.binary_cross_entropy_with_logits(z.double(), y.double()))

    def measure(self, candidates: Sequence[Candidate], progress: Progress | None = None
                ) -> Mapping[str, QualityEstimate]:
        runs: dict[str, list[tuple[float, float]]] = {c.key: [] for c in candidates}
        total, done = self.seeds * (1 + len(candidates)), 0
        for s in range(self.seeds):
            torch.manual_seed(s)
            flat = self._run(copy.deepcopy(self.model), s)
            done += 1
            if progress:
                progress(done, total, f"seed {s} flat")
            for c in candidates:
                torch.manual_seed(s)
                auc, ll = self._run(self.build(c, copy.deepcopy(self.model)), s)
                runs[c.key].append((auc - flat[0], ll - flat[1]))
                done += 1
                if progress:
                    progress(done, total, f"seed {s} {c.key}")
        return {k: _summary(v, self.name) for k, v in runs.items()}


def _summary(deltas: list[tuple[float, float]], data: str) -> QualityEstimate:
    auc, ll = [d[0] for d in deltas], [d[1] for d in deltas]
    sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)  # noqa: E731
    return QualityEstimate(statistics.fmean(auc), sd(auc), statistics.fmean(ll), sd(ll), len(deltas), data)
