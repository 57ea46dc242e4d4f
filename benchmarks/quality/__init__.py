"""Model-quality harness for DMT: data (synthetic planted groups, UCI Adult), metrics, flat model, training.

See `docs/QUALITY.md` for the protocol and the measured numbers.
"""
from benchmarks.quality.adult import adult_available, load_adult
from benchmarks.quality.data import CTRData
from benchmarks.quality.harness import (
    RunResult, TrainConfig, evaluate, plan_baselines, run_experiment, run_seed, tower_ari, train_epochs,
)
from benchmarks.quality.metrics import adjusted_rand_index, auc, log_loss
from benchmarks.quality.model import FlatCTR, flat_model_for
from benchmarks.quality.report import baselines_table, results_table, summarize
from benchmarks.quality.synthetic import make_planted

__all__ = [
    "CTRData", "make_planted", "load_adult", "adult_available", "auc", "log_loss", "adjusted_rand_index",
    "FlatCTR", "flat_model_for", "TrainConfig", "RunResult", "train_epochs", "evaluate", "run_seed",
    "run_experiment", "plan_baselines", "tower_ari", "summarize", "results_table", "baselines_table",
]
