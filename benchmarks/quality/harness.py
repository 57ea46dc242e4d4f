"""Training harness: flat vs DMT variants with the same budget and seeds.

Protocol per seed `s` (paired: every variant sees the same initialisation, batches and order):

1. Build the flat model from seed `s`; train it `pretrain_epochs` (the "briefly pre-trained by
   us" model whose embeddings the learned partitioner reads).
2. flat: continue the pre-trained model for `epochs - pretrain_epochs` epochs.
3. each DMT variant `(partitioner, tower_module[, feed])`: `dmt_compile.transform` of a copy of
   the pre-trained model (`calibration_batches` drawn from the training set), then the same
   `epochs - pretrain_epochs` epochs. A fresh Adam optimizer starts phase 2 for every variant.
   `feed` is `auto` unless given (`hierarchical`, `decoder`, `direct`); the feed the plan used is
   recorded.

Each run records test AUC / log-loss, and for DMT runs the plan's towers, balance, affinity
captured and (on planted data) the adjusted Rand index of the towers vs the planted groups.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch

import dmt_compile
from dmt_compile.printing.progress import ProgressBar
from benchmarks.quality.data import CTRData
from benchmarks.quality.metrics import adjusted_rand_index, auc, log_loss
from benchmarks.quality.model import flat_model_for

__all__ = ["TrainConfig", "RunResult", "train_epochs", "evaluate", "calibration_batches", "tower_ari",
           "run_seed", "run_experiment", "plan_baselines"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Budget and shape of one experiment (the same for every variant)."""

    epochs: int = 6
    pretrain_epochs: int = 2
    batch_size: int = 512
    lr: float = 3e-3
    dim: int = 16
    topology: str = "4x2"
    num_towers: int | None = 4
    compression: float = 4.0
    calibration: int = 8  # calibration batches of `batch_size` rows for the learned partitioner
    progress: bool = True


@dataclass(frozen=True)
class RunResult:
    data: str
    variant: str  # "flat" or "dmt"
    partitioner: str  # "" for flat
    tower_module: str  # "" for flat
    seed: int
    auc: float
    log_loss: float
    seconds: float
    ari: float | None = None
    balance: float | None = None
    affinity_captured: float | None = None
    towers: tuple = field(default=())
    feed: str = ""  # the feed the plan used (identity, direct, hierarchical, decoder); "" for flat
    requested_feed: str = "auto"

    @property
    def key(self) -> str:
        if self.variant == "flat":
            return "flat"
        base = f"dmt/{self.partitioner}/{self.tower_module}"
        return base if self.requested_feed == "auto" else f"{base}/{self.requested_feed}"


def train_epochs(model: torch.nn.Module, data: CTRData, epochs: int, cfg: TrainConfig, seed: int,
                 desc: str = "train", epoch_offset: int = 0) -> list[float]:
    """Adam on binary cross-entropy; batch order from `seed` and the epoch number. Mean loss per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = epochs * ((len(data) + cfg.batch_size - 1) // cfg.batch_size)
    bar = ProgressBar(desc, steps, unit="step", enabled=None if cfg.progress else False, leave=False)  # on a terminal
    losses = []
    model.train()
    try:
        for e in range(epochs):
            total, n = 0.0, 0
            for inputs, y in data.batches(cfg.batch_size, seed=seed * 1000 + epoch_offset + e):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(*inputs).reshape(-1), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * y.numel()
                n += y.numel()
                bar.update(1)
            losses.append(total / max(n, 1))
            bar.set(bar.n, f"loss {losses[-1]:.4f}")
    finally:
        bar.close()
    return losses


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: CTRData, batch_size: int = 8192) -> tuple[float, float]:
    """(AUC, log-loss) on `data`."""
    model.eval()
    logits = torch.cat([model(*inputs).reshape(-1) for inputs, _ in data.batches(batch_size)])
    model.train()
    return auc(data.labels, logits), log_loss(data.labels, logits)


def calibration_batches(data: CTRData, count: int, batch_size: int, seed: int) -> list[tuple]:
    """`count` batches of model inputs drawn from `data` (seeded)."""
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(data), generator=g)[: count * batch_size]
    return [data.inputs(idx[k:k + batch_size]) for k in range(0, idx.numel(), batch_size)]


def tower_ari(plan, groups: Sequence[Sequence[str]]) -> float | None:
    """ARI of the plan's towers vs planted `groups` over the planted features (None without truth)."""
    if not groups:
        return None
    truth = {f: k for k, g in enumerate(groups) for f in g}
    feats = sorted(truth)
    return adjusted_rand_index([truth[f] for f in feats], [plan.tower_of(f) for f in feats])


def _transform(model, train: CTRData, cfg: TrainConfig, partitioner: str, tm: str, seed: int, calib,
               feed: str = "auto"):
    torch.manual_seed(seed)
    example = train.inputs(torch.arange(min(64, len(train))))
    return dmt_compile.transform(
        model, cfg.topology, example, num_towers=cfg.num_towers, tower_module=tm,
        compression=None if tm == "identity" else cfg.compression, partitioner=partitioner, feed=feed,
        calibration_batches=calib if partitioner == "learned" else None, seed=seed,
    )


def _plan_fields(plan, groups) -> dict:
    metrics = dict(plan.metrics)
    return {"ari": tower_ari(plan, groups), "balance": plan.balance(),
            "affinity_captured": metrics.get("affinity_captured"), "towers": plan.towers,
            "feed": ",".join(sorted({d.feed for d in plan.details}))}


def run_seed(train: CTRData, test: CTRData, seed: int, cfg: TrainConfig,
             variants: Iterable[tuple[str, ...]], report: Callable[[RunResult], None] | None = None
             ) -> list[RunResult]:
    """Flat and every `(partitioner, tower_module[, feed])` variant for one seed (see the module docstring)."""
    rest = cfg.epochs - cfg.pretrain_epochs
    t0 = time.perf_counter()
    flat = flat_model_for(train, cfg.dim, seed)
    train_epochs(flat, train, cfg.pretrain_epochs, cfg, seed, f"[seed {seed}] pretrain")
    pre_seconds = time.perf_counter() - t0
    snapshot = copy.deepcopy(flat.state_dict())
    calib = calibration_batches(train, cfg.calibration, cfg.batch_size, seed)
    results = []

    def done(r: RunResult) -> None:
        results.append(r)
        log.info("%s seed %d: auc %.4f log-loss %.4f", r.key, seed, r.auc, r.log_loss)
        if report is not None:
            report(r)

    t0 = time.perf_counter()
    train_epochs(flat, train, rest, cfg, seed, f"[seed {seed}] flat", epoch_offset=cfg.pretrain_epochs)
    a, ll = evaluate(flat, test)
    done(RunResult(train.name, "flat", "", "", seed, a, ll, pre_seconds + time.perf_counter() - t0))
    for variant in variants:
        partitioner, tm, feed = (*variant, "auto")[:3]
        t0 = time.perf_counter()
        base = flat_model_for(train, cfg.dim, seed)
        base.load_state_dict(snapshot)
        dmt = _transform(base, train, cfg, partitioner, tm, seed, calib, feed)
        train_epochs(dmt, train, rest, cfg, seed, f"[seed {seed}] dmt {partitioner}/{tm}/{feed}",
                     epoch_offset=cfg.pretrain_epochs)
        a, ll = evaluate(dmt, test)
        done(RunResult(train.name, "dmt", partitioner, tm, seed, a, ll, pre_seconds + time.perf_counter() - t0,
                       requested_feed=feed, **_plan_fields(dmt.plan, train.groups)))
    return results


def plan_baselines(train: CTRData, seed: int, cfg: TrainConfig,
                   partitioners: Sequence[str] = ("learned", "balanced", "random", "contiguous")) -> list[dict]:
    """Plans only (no training after the pre-training): ARI, affinity captured, balance per partitioner."""
    flat = flat_model_for(train, cfg.dim, seed)
    train_epochs(flat, train, cfg.pretrain_epochs, cfg, seed, f"[seed {seed}] pretrain")
    calib = calibration_batches(train, cfg.calibration, cfg.batch_size, seed)
    from dmt_compile.partition.affinity import AffinityRecorder

    rows = []
    for p in partitioners:
        rec = AffinityRecorder()
        torch.manual_seed(seed)
        dmt = dmt_compile.transform(flat, cfg.topology, train.inputs(torch.arange(8)), num_towers=cfg.num_towers,
                                    partitioner=p, calibration_batches=calib, seed=seed, callback=rec)
        tower_of = {f: t for t, fs in enumerate(dmt.plan.towers) for f in fs}
        rows.append({"partitioner": p, "seed": seed, "ari": tower_ari(dmt.plan, train.groups),
                     "affinity_captured": rec.affinity.captured(tower_of), "balance": dmt.plan.balance(),
                     "towers": dmt.plan.towers})
    return rows


def run_experiment(train: CTRData, test: CTRData, seeds: Sequence[int], cfg: TrainConfig,
                   variants: Sequence[tuple[str, ...]], report: Callable[[RunResult], None] | None = None
                   ) -> list[RunResult]:
    """`run_seed` for every seed."""
    out: list[RunResult] = []
    for s in seeds:
        out += run_seed(train, test, s, cfg, variants, report)
    return out
