"""`HarnessQualityCheck`: `strategy="auto"`'s quality check on the harness's data sets (synthetic, Adult).

For each data set and seed (paired, as `harness.run_seed`): the harness's flat DLRM is pre-trained
`pretrain_epochs`, then flat and every shortlisted candidate's configuration (its Tower Module,
compression and feed, on the data set's standard topology and tower count; `feed="auto"` when the
candidate's feed does not apply to the harness model; its exchanges rounded as its wire dtype
rounds them, `runtime.wire_codec.emulate_wire`) continue from the same weights for
`epochs - pretrain_epochs` epochs; ΔAUC and Δlog-loss are test-set differences against flat.
This measures the quality risk of a configuration on reference data, not on the user's model
(pass the user's own labelled batches for that).
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import torch

import dmt_compile
from dmt_compile.errors import TowerModuleError
from dmt_compile.runtime.wire_codec import emulate_wire
from dmt_compile.strategy import Candidate, QualityEstimate
from benchmarks.quality.harness import TrainConfig, evaluate, train_epochs
from benchmarks.quality.model import flat_model_for

__all__ = ["HarnessQualityCheck", "DATA_SETS"]

DATA_SETS = {"synthetic": ("4x2", 4, 16, 0.25), "adult": ("2x4", 2, 8, 0.2)}  # topology, towers, dim, test share


def _load(name: str, samples: int):
    from benchmarks.quality import load_adult, make_planted

    data = make_planted(samples, seed=0, cardinality=20, rank=8, clusters=5) if name == "synthetic" else load_adult()
    return data.split(DATA_SETS[name][3], seed=0)


@dataclass
class HarnessQualityCheck:
    data_sets: Sequence[str] = ("synthetic", "adult")
    seeds: int = 3
    epochs: int = 2
    pretrain_epochs: int = 1
    samples: int = 20_000
    batch_size: int = 512

    @property
    def name(self) -> str:
        return "+".join(self.data_sets) + " (the quality harness's data sets, its flat DLRM)"

    def _steps(self, candidates: Sequence[Candidate]) -> int:
        rows = {"synthetic": self.samples * (1 - DATA_SETS["synthetic"][3]), "adult": 48_842 * 0.8}
        per_epoch = sum(-(-int(rows[d]) // self.batch_size) for d in self.data_sets)
        return self.seeds * per_epoch * (self.pretrain_epochs + (self.epochs - self.pretrain_epochs)
                                         * (1 + len(candidates)))

    def cost(self, candidates: Sequence[Candidate]) -> str:
        return (f"paired training on {'+'.join(self.data_sets)}: flat + {len(candidates)} candidate(s) x "
                f"{self.seeds} seeds x {self.epochs} epochs = about {self._steps(candidates):,} training steps")

    def _candidate_model(self, c: Candidate, base, cfg: TrainConfig, train, seed: int):
        """The candidate's configuration of `base`, its exchanges rounded as its wire dtype rounds them."""
        example = train.inputs(torch.arange(min(64, len(train))))
        torch.manual_seed(seed)
        if c.strategy == "flat":  # flat computes the model itself; only its wire can differ
            return emulate_wire(base, c.wire_dtype)
        kwargs = dict(num_towers=cfg.num_towers, tower_module=c.tower_module,
                      compression=None if c.tower_module == "identity" else c.compression, seed=seed)
        try:
            model = dmt_compile.transform(base, cfg.topology, example,
                                          feed=c.feed if c.feed != "identity" else "auto", **kwargs)
        except TowerModuleError:
            model = dmt_compile.transform(base, cfg.topology, example, feed="auto", **kwargs)
        return emulate_wire(model, c.wire_dtype)

    def _one(self, data: str, candidates: Sequence[Candidate], progress, done: list[int], total: int) -> dict:
        topo, towers, dim, _ = DATA_SETS[data]
        cfg = TrainConfig(epochs=self.epochs, pretrain_epochs=self.pretrain_epochs, batch_size=self.batch_size,
                          dim=dim, topology=topo, num_towers=towers, progress=False)
        train, test = _load(data, self.samples)
        deltas: dict[str, list[tuple[float, float]]] = {c.key: [] for c in candidates}
        rest = self.epochs - self.pretrain_epochs
        for s in range(self.seeds):
            flat = flat_model_for(train, dim, s)
            train_epochs(flat, train, self.pretrain_epochs, cfg, s)
            snapshot = copy.deepcopy(flat.state_dict())
            train_epochs(flat, train, rest, cfg, s, epoch_offset=self.pretrain_epochs)
            ref = evaluate(flat, test)
            for c in candidates:
                base = flat_model_for(train, dim, s)
                base.load_state_dict(snapshot)
                model = self._candidate_model(c, base, cfg, train, s)
                train_epochs(model, train, rest, cfg, s, epoch_offset=self.pretrain_epochs)
                a, ll = evaluate(model, test)
                deltas[c.key].append((a - ref[0], ll - ref[1]))
                done[0] += 1
                if progress:
                    progress(done[0], total, f"{data} seed {s} {c.key}")
        return deltas

    def measure(self, candidates: Sequence[Candidate], progress=None) -> Mapping[str, QualityEstimate]:
        total, done = len(self.data_sets) * self.seeds * len(candidates), [0]
        per_data = {d: self._one(d, candidates, progress, done, total) for d in self.data_sets}
        out = {}
        for c in candidates:  # the worse data set decides (its lower bound)
            estimates = [_estimate(per_data[d][c.key], d) for d in self.data_sets]
            out[c.key] = min(estimates, key=lambda e: e.auc_lower_bound)
        return out


def _estimate(deltas: list[tuple[float, float]], data: str) -> QualityEstimate:
    auc, ll = [d[0] for d in deltas], [d[1] for d in deltas]
    sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)  # noqa: E731
    return QualityEstimate(statistics.fmean(auc), sd(auc), statistics.fmean(ll), sd(ll), len(deltas), data)
