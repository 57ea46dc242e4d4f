"""``bench --quality``: train exactly the timed configurations and flat, paired, and add ΔAUC / Δlog-loss.

Two data sets, each with :data:`SEEDS` paired seeds (flat and every configuration start from the
same initialisation and see the same batches in the same order; Δ = configuration − flat per seed):

* ``synthetic``: planted-interaction data (:func:`~benchmarks.quality.synthetic.make_planted`)
  shaped exactly like the bench model: its 26 sparse features ``C1..C26`` with the bench's
  vocabulary (:data:`~.model.ROWS`) and its 13 dense features; the model is the bench model itself
  (:func:`~.model.factory`: same dims, same dense layers).
* ``adult``: UCI Adult (``../shared/data/adult.csv.gz`` beside the repository, see
  :mod:`~benchmarks.quality.adult`) with the quality harness's DLRM-style model, transformed
  with the same Tower Module, compression and feed on the same host layout.

A configuration is what was timed: the strategy's transform (towers, Tower Module, c, feed) trained
in one process (the distributed run computes the same function, ``dmt-compile verify``), plus its
wire dtype: the exchanged values (embedding lookups, tower outputs) and their gradients are rounded
through the same codec (:mod:`~dmt_compile.runtime.wire_codec`) in the forward and backward pass.
Flat, SPTT identity and TorchRec's TW/RW/TWRW on an fp32 wire compute flat's function exactly and
get Δ = 0 without training (``exact: true``); with a qcomm codec they are trained like flat + that wire.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Callable

import torch

from dmt_compile.runtime.wire_codec import emulate_wire

__all__ = ["QualityConfig", "add_quality", "quality_rows", "SEEDS"]

SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class QualityConfig:
    samples: int = 60_000
    epochs: int = 3
    batch_size: int = 512
    lr: float = 3e-3
    seeds: tuple[int, ...] = SEEDS
    adult_limit: int | None = None  # rows of Adult to use (None: all)


#: the runtime's wire emulation (one process): lookups and Tower-Module outputs rounded fwd and bwd
_code_exchanges = emulate_wire


def _exact(run: tuple) -> bool:
    strategy, _, wire = run
    return strategy in ("flat", "sptt") or strategy.startswith("torchrec_") if wire in (None, "fp32") else False


def _build(run: tuple, model: torch.nn.Module, inputs: tuple, cfg: Any) -> torch.nn.Module:
    import dmt_compile

    strategy, c, wire = run
    if strategy == "sptt_tm":
        model = dmt_compile.transform(model, f"{cfg.num_hosts}x{cfg.local_size}", inputs,
                                      tower_module=cfg.tower_module, compression=c, feed=cfg.feed)
    _code_exchanges(model, wire)
    return model


def _data(name: str, q: QualityConfig):
    from benchmarks.emulated.model import NUM_DENSE, NUM_SPARSE, ROWS, feature_names
    from benchmarks.quality.adult import load_adult
    from benchmarks.quality.data import CTRData
    from benchmarks.quality.synthetic import make_planted

    if name == "adult":
        return load_adult(limit=q.adult_limit).split(0.2, seed=0)
    d = make_planted(q.samples, num_groups=2, group_size=NUM_SPARSE // 2, cardinality=ROWS, clusters=20,
                     num_dense=NUM_DENSE, seed=0)
    d = CTRData("planted, bench-shaped", d.dense, d.sparse, d.labels, tuple(feature_names()), d.cardinalities)
    return d.split(0.2, seed=0)


def _model(name: str, train: Any, seed: int):
    if name == "adult":
        from benchmarks.quality.model import flat_model_for

        return flat_model_for(train, seed=seed)
    from benchmarks.emulated.model import factory

    return factory(batch_size=8, seed=seed)[0]


def _train(name: str, run: tuple, train: Any, test: Any, seed: int, q: QualityConfig, cfg: Any) -> tuple:
    from benchmarks.quality.harness import TrainConfig, evaluate, train_epochs

    model = _model(name, train, seed)
    inputs = train.inputs(torch.arange(min(64, len(train))))
    torch.manual_seed(seed)
    model = _build(run, model, inputs, cfg)
    tc = TrainConfig(epochs=q.epochs, batch_size=q.batch_size, lr=q.lr, progress=False)
    train_epochs(model, train, q.epochs, tc, seed)
    return evaluate(model, test)


def _spread(xs: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(xs), "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0, "per_seed": xs}


def quality_rows(runs: list[tuple], cfg: Any, q: QualityConfig, log: Callable[[str], None],
                 datasets: tuple[str, ...] = ("synthetic", "adult")) -> dict[str, dict[str, Any]]:
    """{run key: {"delta_auc": {data: spread}, "delta_log_loss": {...}, "flat_auc": {...}, "exact"}}."""
    from benchmarks.emulated.worker import run_key

    out: dict[str, dict[str, Any]] = {run_key(*r): {"delta_auc": {}, "delta_log_loss": {}, "auc": {}, "exact": _exact(r)}
                                      for r in runs}
    for name in datasets:
        train, test = _data(name, q)
        flat = {s: _train(name, ("flat", None, "fp32"), train, test, s, q, cfg) for s in q.seeds}
        log(f"quality {name}: flat AUC " + ", ".join(f"{flat[s][0]:.4f}" for s in q.seeds))
        for r in runs:
            key = run_key(*r)
            got = flat if _exact(r) else {s: _train(name, r, train, test, s, q, cfg) for s in q.seeds}
            out[key]["delta_auc"][name] = _spread([got[s][0] - flat[s][0] for s in q.seeds])
            out[key]["delta_log_loss"][name] = _spread([got[s][1] - flat[s][1] for s in q.seeds])
            out[key]["auc"][name] = _spread([got[s][0] for s in q.seeds])
            log(f"quality {name}: {key} ΔAUC {out[key]['delta_auc'][name]['median']:+.4f}")
    return out


def add_quality(report: dict[str, Any], cfg: Any, log: Callable[[str], None],
                q: QualityConfig = QualityConfig()) -> None:
    """Train every run of `report` (or of each sweep point) and write the deltas into its rows, then
    recompute the best baseline of equal quality and the speedups against it."""
    from benchmarks.emulated.bound import add_honest_bounds
    from benchmarks.emulated.headline import add_claims

    groups = [p["results"] for p in report["sweep"]] if "sweep" in report else [report["results"]]
    runs = sorted({(r["strategy"], r["compression"], r["wire_dtype"]) for rows in groups for r in rows
                   if r["strategy"] != "auto"}, key=lambda t: (t[0], t[1] or 0, t[2]))
    got = quality_rows(runs, cfg, q, log)
    for rows in groups:
        for r in rows:
            if r["strategy"] == "auto":  # the quality of the run it reuses; exact when it is exact
                same = r["auto"].get("reused_samples_of") or ("flat" if r["auto"].get("exact") else None)
                r.update(got.get(same, {"quality_note": "the auto candidate is not a timed run: not trained"}))
                continue
            r.update(got[r["run"]])
        claims = add_claims(rows)
        add_honest_bounds(rows, {r["run"]: r["non_wire_s"] for r in rows if r.get("non_wire_s") is not None})
        if "sweep" not in report:
            report["best_baseline"], report["best_baseline_basis"] = claims["best_baseline"], claims["basis"]
    report["quality"] = {"seeds": list(q.seeds), "samples": q.samples, "epochs": q.epochs, "batch_size": q.batch_size,
                         "lr": q.lr}
