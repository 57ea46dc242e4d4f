"""``bench --quality``: train exactly the timed configurations and flat, paired, and add ΔAUC / Δlog-loss.

Two data sets, each with :data:`SEEDS` paired seeds (flat and every configuration start from the
same initialisation and see the same batches in the same order; Δ = configuration − flat per seed):

* ``synthetic``: planted-interaction data (:func:`~benchmarks.quality.synthetic.make_planted`)
  shaped exactly like the bench model: its 26 sparse features ``C1..C26`` with the bench's
  vocabulary (:data:`~.model.ROWS`) and its 13 dense features; the model is the bench model itself
  (:func:`~.model.factory`: same dims, same dense layers).
  Ids of one cluster block share 90 % of their latent vector (``shared_latent``): with independent
  vectors per id, 60,000 samples cannot teach any model the 2,000-id vocabularies (flat's test AUC
  0.51), and a ΔAUC between two models that learned nothing says nothing.
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

from dmt_compile.errors import DmtError
from dmt_compile.runtime.wire_codec import emulate_wire

__all__ = ["QualityConfig", "add_quality", "quality_rows", "function_key", "SEEDS"]

SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class QualityConfig:
    samples: int = 150_000  # synthetic rows (80 % train), each seen once
    epochs: int = 3  # on Adult
    # one pass over the synthetic data: 26 tables of 2,000 x 64 rows memorise a few thousand rows per id in a
    # second epoch (3 epochs of 60,000 rows gave flat a test log-loss of 1.8, above a constant predictor's 0.69)
    synthetic_epochs: int = 1
    batch_size: int = 512
    lr: float = 3e-3
    seeds: tuple[int, ...] = SEEDS
    adult_limit: int | None = None  # rows of Adult to use (None: all)
    # ids of one cluster block share most of their latent vector, so the bench's 2,000-id vocabularies are
    # learnable from `samples` rows (with independent vectors flat's test AUC stays near 0.51: no signal)
    shared_latent: float = 0.9


def _exact(run: tuple) -> bool:
    strategy, _, wire = run
    lossless = strategy in ("flat", "sptt") or (strategy.startswith("torchrec_") and strategy != "torchrec_towers")
    return lossless if wire in (None, "fp32") else False


def _build(run: tuple, model: torch.nn.Module, inputs: tuple, cfg: Any) -> torch.nn.Module:
    import dmt_compile

    strategy, c, wire = run
    if strategy in ("sptt_tm", "torchrec_towers"):  # TorchRec's towers compute the sptt_tm model
        model = dmt_compile.transform(model, f"{cfg.num_hosts}x{cfg.local_size}", inputs,
                                      tower_module=cfg.tower_module, compression=c, feed=cfg.feed)
    emulate_wire(model, wire)  # one process: lookups and Tower-Module outputs rounded like the wire, fwd and bwd
    return model


def _data(name: str, q: QualityConfig):
    from benchmarks.emulated.model import NUM_DENSE, NUM_SPARSE, ROWS, feature_names
    from benchmarks.quality.adult import load_adult
    from benchmarks.quality.data import CTRData
    from benchmarks.quality.synthetic import make_planted

    if name == "adult":
        return load_adult(limit=q.adult_limit).split(0.2, seed=0)
    d = make_planted(q.samples, num_groups=2, group_size=NUM_SPARSE // 2, cardinality=ROWS, clusters=20,
                     shared_latent=q.shared_latent,
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
    epochs = q.synthetic_epochs if name == "synthetic" else q.epochs
    tc = TrainConfig(epochs=epochs, batch_size=q.batch_size, lr=q.lr, progress=False)
    train_epochs(model, train, epochs, tc, seed)
    return evaluate(model, test)


def _spread(xs: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(xs), "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0, "per_seed": xs}


def _recipe(q: QualityConfig) -> str:
    """The training recipe of a cached result (everything but the seed)."""
    return (f"{q.samples} samples x {q.synthetic_epochs} epochs (Adult {q.epochs}), batch {q.batch_size}, lr {q.lr:g}, "
            f"shared latent {q.shared_latent:g}, adult rows {q.adult_limit}")


def function_key(name: str, run: tuple, cfg: Any) -> str:
    """What a training computes, so equal functions train once: TorchRec, SPTT identity and flat compute
    flat's function (with the same wire rounding); a Tower-Module run adds its module, c, feed and hosts."""
    strategy, c, wire = run
    wire = "fp32" if wire in (None, "fp32", "native") else wire
    if strategy not in ("sptt_tm", "torchrec_towers"):  # TorchRec's towers compute the sptt_tm model
        return f"{name}|flat|{wire}"
    return f"{name}|sptt_tm|{cfg.tower_module}|{c:g}|{cfg.feed}|{cfg.num_hosts}x{cfg.local_size}|{wire}"


def quality_rows(runs: list[tuple], cfg: Any, q: QualityConfig, log: Callable[[str], None],
                 datasets: tuple[str, ...] = ("synthetic", "adult"),
                 cache: dict[str, list] | None = None,
                 on_trained: Callable[[dict[str, list]], None] | None = None) -> dict[str, dict[str, Any]]:
    """{run key: {"delta_auc": {data: spread}, "delta_log_loss": {...}, "auc": {...}, "exact"}}.

    `cache` ({function key|seed: [auc, log loss]}, kept by the caller across reports) trains each
    distinct function once per seed: flat+bf16 and TorchRec TW+bf16 round the same values."""
    from benchmarks.emulated.worker import run_key

    cache = {} if cache is None else cache
    out: dict[str, dict[str, Any]] = {run_key(*r): {"delta_auc": {}, "delta_log_loss": {}, "auc": {}, "exact": _exact(r)}
                                      for r in runs}

    def trained(name: str, run: tuple, data: tuple, seed: int) -> list:
        key = f"{function_key(name, run, cfg)}|seed {seed}|{_recipe(q)}"
        if key not in cache:
            try:
                cache[key] = list(_train(name, run, *data, seed, q, cfg))
            except DmtError as exc:  # e.g. c=16 hierarchical on Adult's model: refused there, said per row
                cache[key] = ["refused", str(exc).splitlines()[0]]
            if on_trained is not None:  # e.g. save the cache: a long run interrupted keeps what it trained
                on_trained(cache)
        return cache[key]

    for name in datasets:
        data = _data(name, q)
        flat = {s: trained(name, ("flat", None, "fp32"), data, s) for s in q.seeds}
        log(f"quality {name}: flat AUC " + ", ".join(f"{flat[s][0]:.4f}" for s in q.seeds))
        for r in runs:
            key = run_key(*r)
            got = flat if _exact(r) else {s: trained(name, r, data, s) for s in q.seeds}
            refused = next((g[1] for g in got.values() if g[0] == "refused"), None)
            if refused:
                out[key].setdefault("refused", {})[name] = refused
                log(f"quality {name}: {key} refused: {refused}")
                continue
            out[key]["delta_auc"][name] = _spread([got[s][0] - flat[s][0] for s in q.seeds])
            out[key]["delta_log_loss"][name] = _spread([got[s][1] - flat[s][1] for s in q.seeds])
            out[key]["auc"][name] = _spread([got[s][0] for s in q.seeds])
            log(f"quality {name}: {key} ΔAUC {out[key]['delta_auc'][name]['median']:+.4f}")
    return out


def add_quality(report: dict[str, Any], cfg: Any, log: Callable[[str], None],
                q: QualityConfig = QualityConfig(), cache: dict[str, list] | None = None,
                on_trained: Callable[[dict[str, list]], None] | None = None, only: set[str] | None = None,
                datasets: tuple[str, ...] = ("synthetic", "adult")) -> None:
    """Train every run of `report` (or of each sweep point) and write the deltas into its rows, then
    recompute the best baseline of equal quality and the speedups against it."""
    from benchmarks.emulated.bound import add_honest_bounds
    from benchmarks.emulated.headline import add_claims

    groups = [p["results"] for p in report["sweep"]] if "sweep" in report else [report["results"]]

    runs = sorted({(r["strategy"], r["compression"], r["wire_dtype"]) for rows in groups for r in rows
                   if r["strategy"] != "auto" and (only is None or r["run"] in only or r["run"] == "flat")},
                  key=lambda t: (t[0], t[1] or 0, t[2]))
    got = quality_rows(runs, cfg, q, log, datasets, cache=cache, on_trained=on_trained)
    for rows in groups:
        for r in rows:
            if r["strategy"] == "auto":  # the quality of the run it reuses; exact when it is exact
                same = r["auto"].get("reused_samples_of") or ("flat" if r["auto"].get("exact") else None)
                r.update(got.get(same, {"quality_note": "the auto candidate is not a timed run: not trained"}))
                continue
            r.update(got.get(r["run"], {"quality": "not measured (not among the runs asked for)"}))
        claims = add_claims(rows)
        add_honest_bounds(rows, {r["run"]: r["non_wire_s"] for r in rows if r.get("non_wire_s") is not None},
                          report.get("cpu_floor_unthrottled_s"))
        if "sweep" not in report:
            report["best_baseline"], report["best_baseline_basis"] = claims["best_baseline"], claims["basis"]
    report["quality"] = {"seeds": list(q.seeds), "samples": q.samples, "epochs": q.epochs,
                         "synthetic_epochs": q.synthetic_epochs, "batch_size": q.batch_size,
                         "lr": q.lr}
