"""Shipped quality evidence: what the quality harness measured for each compressing Tower Module and
feed, so that a search without calibration data admits an inexact candidate on evidence, never on
the structure of its feed alone.

Why not "the decoder feed is quality-neutral": a decoder re-expands a tower's compressed output to
the original embeddings, so the model's own interaction runs unchanged, but what crossed the hop is
still c times fewer numbers. Measured (docs/QUALITY.md, 3 paired seeds, c = 4): `linear` with
decoders loses 0.012 AUC on the planted-interaction data, `cross` with decoders 0.0033; `dot`
gains on both data sets with either feed.

`EVIDENCE` holds those measurements (ΔAUC against flat, mean and sample spread over seeds, per data
set). `shipped_verdict(candidate, budget)` admits an unmeasured inexact candidate when the harness
measured its Tower Module and feed at a compression at least as high as the candidate's, on a
lossless wire, and the lower bound (mean − spread) stays within the budget on every data set.
Less compression than measured is assumed no worse (the Tower Module passes more numbers); a
candidate with no such measurement is not admitted. Calibration data replaces all of this with a
measurement on the user's own data (`quality_risk.PairedTraining`).
"""
from __future__ import annotations

from dataclasses import dataclass

from dmt_compile.strategy.candidate import Candidate

__all__ = ["Evidence", "EVIDENCE", "EVIDENCE_DATA", "evidence_for", "shipped_verdict"]


@dataclass(frozen=True)
class Evidence:
    """One measured configuration on one data set: ΔAUC vs flat over `seeds` paired runs."""

    tower_module: str
    feed: str
    compression: float
    data: str
    delta_auc: float
    spread: float
    seeds: int = 3

    @property
    def lower_bound(self) -> float:
        return self.delta_auc - self.spread


#: the quality harness's data sets (docs/QUALITY.md): planted-interaction synthetic and UCI Adult
EVIDENCE_DATA = ("planted", "adult")

#: `python examples/train.py [--data adult] --partitioners learned --tower-modules
#: identity,linear,dot,cross,wukong --feeds auto,decoder` (docs/QUALITY.md, "Hierarchical feed"), c = 4;
#: the decoder rows from its rerun with `FanInLinear` decoders (docs/QUALITY.md, "Decoders and linear
#: cores stored times sqrt(fan-in)")
EVIDENCE: tuple[Evidence, ...] = (
    Evidence("dot", "hierarchical", 4.0, "planted", +0.0168, 0.0015),
    Evidence("dot", "hierarchical", 4.0, "adult", +0.0005, 0.0007),
    Evidence("dot", "decoder", 4.0, "planted", +0.0145, 0.0039),
    Evidence("dot", "decoder", 4.0, "adult", +0.0016, 0.0003),
    Evidence("linear", "decoder", 4.0, "planted", -0.0118, 0.0085),
    Evidence("linear", "decoder", 4.0, "adult", +0.0013, 0.0008),
    Evidence("cross", "hierarchical", 4.0, "planted", -0.0102, 0.0077),
    Evidence("cross", "hierarchical", 4.0, "adult", +0.0005, 0.0005),
    Evidence("cross", "decoder", 4.0, "planted", -0.0033, 0.0072),
    Evidence("cross", "decoder", 4.0, "adult", +0.0014, 0.0005),
    Evidence("wukong", "hierarchical", 4.0, "planted", +0.0027, 0.0054),
    Evidence("wukong", "hierarchical", 4.0, "adult", +0.0009, 0.0018),
    Evidence("wukong", "decoder", 4.0, "planted", -0.0025, 0.0031),
    Evidence("wukong", "decoder", 4.0, "adult", +0.0018, 0.0008),
)


def evidence_for(c: Candidate, evidence: tuple[Evidence, ...] = EVIDENCE) -> dict[str, Evidence]:
    """Per data set, the measurement that covers `c`: same Tower Module and feed, the least
    compression at or above c's (the closest configuration measured)."""
    out: dict[str, Evidence] = {}
    for e in evidence:
        if e.tower_module == c.tower_module and e.feed == c.feed and e.compression >= c.compression:
            if e.data not in out or e.compression < out[e.data].compression:
                out[e.data] = e
    return out


def shipped_verdict(c: Candidate, budget: float, evidence: tuple[Evidence, ...] = EVIDENCE) -> str:
    """Why the unmeasured inexact candidate `c` is dropped without calibration data ('' when the
    shipped evidence admits it; module docstring)."""
    if not c.lossless_wire:
        return (f"quality not checked: a {c.wire_dtype} wire rounds the exchanged activations "
                "(pass calibration data to measure it)")
    found = evidence_for(c, evidence)
    missing = [d for d in EVIDENCE_DATA if d not in found]
    if missing:
        return (f"quality not checked: no shipped measurement of {c.tower_module} with {c.feed} feed at "
                f"c ≥ {c.compression:g} (pass calibration data to measure it)")
    worst = min(found.values(), key=lambda e: e.lower_bound)
    if worst.lower_bound < -budget:
        return (f"quality not checked here, and the harness measured {c.tower_module} with {c.feed} feed at "
                f"c = {worst.compression:g} at ΔAUC {worst.delta_auc:+.4f} ± {worst.spread:.4f} on {worst.data}, "
                f"past the budget -{budget:g} (pass calibration data to measure it on yours)")
    return ""
