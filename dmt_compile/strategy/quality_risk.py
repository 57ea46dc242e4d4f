"""Quality risk of a candidate: measured evidence when there is data, the model's structure otherwise.

* `QualityEstimate`: paired ΔAUC / Δlog-loss of a candidate against flat over seeds (mean and
  sample standard deviation of the per-seed differences); its lower bound is mean − spread.
* `QualityCheck`: what measures them (`measure(candidates, progress)`), and what that costs
  (`cost(candidates)`, printed before it starts). `PairedTraining` trains on the user's
  labelled batches; the CLI injects one over the quality harness's data sets.
* `shortlist`: the candidates worth measuring: not exact, predicted faster than the fastest
  exact candidate, the fastest `size` of them.
* `verdict`: why a candidate is dropped ('' when it stays). Exact candidates (flat, identity)
  always stay. A measured candidate is dropped when its ΔAUC lower bound is below −budget.
  An unmeasured candidate stays when the quality harness's shipped measurements admit it
  (`quality_evidence`: its Tower Module and feed measured at c at least as high, within the
  budget on both data sets, lossless wire) and is dropped otherwise: with data, measuring more
  can only add candidates, never lose one the unchecked search would keep.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Protocol, Sequence, runtime_checkable

from dmt_compile.strategy.candidate import Candidate
from dmt_compile.strategy.quality_evidence import shipped_verdict

__all__ = ["QualityEstimate", "QualityCheck", "Progress", "shortlist", "verdict", "SHORTLIST"]

SHORTLIST = 3  # candidates measured by a quality check
Progress = Callable[[int, int, str], None]  # (done, total, what)


@dataclass(frozen=True)
class QualityEstimate:
    """Paired differences candidate − flat over `seeds` runs on `data`."""

    delta_auc: float
    auc_spread: float
    delta_log_loss: float
    log_loss_spread: float
    seeds: int
    data: str

    @property
    def auc_lower_bound(self) -> float:
        return self.delta_auc - self.auc_spread


@runtime_checkable
class QualityCheck(Protocol):
    """Measures candidates' quality against flat (see the module docstring)."""

    name: str

    def cost(self, candidates: Sequence[Candidate]) -> str: ...

    def measure(self, candidates: Sequence[Candidate], progress: Progress | None = None
                ) -> Mapping[str, QualityEstimate]: ...


def shortlist(candidates: Sequence[Candidate], seconds: Mapping[str, float], size: int = SHORTLIST
              ) -> list[Candidate]:
    """The fastest `size` inexact candidates predicted faster than every exact one."""
    exact = [seconds[c.key] for c in candidates if c.exact]
    bar = min(exact) if exact else float("inf")
    fast = sorted((c for c in candidates if not c.exact and seconds[c.key] < bar), key=lambda c: (seconds[c.key], c.key))
    return fast[:size]


def verdict(c: Candidate, estimate: QualityEstimate | None, budget: float, checked: bool) -> str:
    """Why `c` is dropped for quality ('' when it stays); see the module docstring."""
    if c.exact:
        return ""
    if estimate is not None:
        if estimate.auc_lower_bound < -budget:
            return (f"ΔAUC lower bound {estimate.auc_lower_bound:+.4f} breaks the budget -{budget:g} "
                    f"({estimate.seeds} seeds on {estimate.data})")
        return ""
    shipped = shipped_verdict(c, budget)
    if not shipped:
        return ""
    return "quality not measured (not shortlisted)" if checked else shipped
