"""Fake predictors and quality checks for the strategy tests (deterministic, no cost model)."""
from __future__ import annotations

from dataclasses import dataclass, field

from dmt_compile.strategy import Prediction, QualityEstimate


@dataclass(frozen=True)
class WireSharePredictor:
    """step = fixed compute + FLOPs (TMs, decoders) + bytes across hosts x `seconds_per_byte`.

    A large `seconds_per_byte` makes the step network-bound, a tiny one compute-bound.
    """

    seconds_per_byte: float
    seconds_per_flop: float = 1e-12
    base_s: float = 1e-3
    rel_error: float = 0.01
    name: str = "fake wire-share predictor"

    def predict(self, c, topology, batch_per_rank):
        b = batch_per_rank
        if c.strategy == "flat":
            cross = 1.05 * sum(t.width_in for t in c.towers) * b * c.wire_bytes  # flat sends a bit more
        else:
            cross = sum(t.width_out for t in c.towers) * b * c.wire_bytes
        flops = (sum(t.tm_flops for t in c.towers) + c.decoder_flops) * b
        compute = self.base_s + flops * self.seconds_per_flop
        comm = cross * self.seconds_per_byte
        return Prediction(compute + comm, self.rel_error, cross, compute, comm)


@dataclass(frozen=True)
class TablePredictor:
    """Seconds from a table by candidate key (default: `default_s`)."""

    seconds: dict
    default_s: float = 1.0
    rel_error: float = 0.05
    name: str = "fake table predictor"

    def predict(self, c, topology, batch_per_rank):
        s = self.seconds.get(c.key, self.default_s)
        return Prediction(s, self.rel_error, 0.0, s, 0.0)


@dataclass
class FixedQuality:
    """A QualityCheck returning fixed (ΔAUC, spread) per candidate key; records what it was asked."""

    values: dict
    default: tuple = (0.0, 0.0)
    name: str = "fixed quality"
    asked: list = field(default_factory=list)

    def cost(self, candidates):
        return f"{len(candidates)} fake runs"

    def measure(self, candidates, progress=None):
        self.asked.extend(c.key for c in candidates)
        out = {}
        for i, c in enumerate(candidates):
            d, s = self.values.get(c.key, self.default)
            out[c.key] = QualityEstimate(d, s, -d, s, 3, self.name)
            if progress:
                progress(i + 1, len(candidates), c.key)
        return out
