"""UCI Adult ("Census Income") as a CTR-style data set, read with the standard library.

8 categorical columns become sparse features; the 6 numeric columns are standardized as dense
features (`fnlwgt`, `capital-gain`, `capital-loss` through `log1p`) and also bucketized into 16
quantile buckets as sparse features (`age_q`, ...), so the model has 14 sparse features. The
label is `income` in {`>50K`, `>50K.`}. Rows are in file order; split with `CTRData.split(seed=...)`.
"""
from __future__ import annotations

import csv
import gzip
import os

import torch

from dmt_compile.errors import InputError
from benchmarks.quality.data import CTRData

__all__ = ["ADULT_PATH", "CATEGORICAL", "NUMERIC", "adult_available", "load_adult"]

def _default_path() -> str:
    """$DMT_ADULT_PATH, else shared/data beside the repository checkout, else /work/shared/data."""
    if os.environ.get("DMT_ADULT_PATH"):
        return os.environ["DMT_ADULT_PATH"]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    beside = os.path.join(os.path.dirname(repo), "shared", "data", "adult.csv.gz")
    return beside if os.path.exists(beside) else "/work/shared/data/adult.csv.gz"


ADULT_PATH = _default_path()
CATEGORICAL = ("workclass", "education", "marital-status", "occupation", "relationship", "race", "gender",
               "native-country")
NUMERIC = ("age", "fnlwgt", "educational-num", "capital-gain", "capital-loss", "hours-per-week")
_LOG = {"fnlwgt", "capital-gain", "capital-loss"}


def adult_available(path: str | None = None) -> bool:
    return os.path.exists(path or ADULT_PATH)


def load_adult(path: str | None = None, buckets: int = 16, limit: int | None = None) -> CTRData:
    """The Adult data set as `CTRData` (see the module docstring); InputError when the file is missing."""
    path = path or ADULT_PATH
    if not os.path.exists(path):
        raise InputError(f"the Adult data file {path} does not exist",
                         "set DMT_ADULT_PATH or use the synthetic data (--data synthetic)")
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if limit is not None:
        rows = rows[:limit]
    missing = [c for c in (*CATEGORICAL, *NUMERIC, "income") if rows and c not in rows[0]]
    if missing:
        raise InputError(f"{path} lacks columns {missing}", "use the UCI Adult csv with a header row")
    vocab = {c: {} for c in CATEGORICAL}
    cat_ids = [[vocab[c].setdefault(r[c].strip(), len(vocab[c])) for c in CATEGORICAL] for r in rows]
    num = torch.tensor([[float(r[c]) for c in NUMERIC] for r in rows], dtype=torch.float64)
    for k, c in enumerate(NUMERIC):
        if c in _LOG:
            num[:, k] = torch.log1p(num[:, k].clamp_min(0))
    bucket_ids = []
    for k in range(len(NUMERIC)):
        edges = torch.quantile(num[:, k], torch.linspace(0, 1, buckets + 1, dtype=torch.float64)[1:-1])
        bucket_ids.append(torch.bucketize(num[:, k].contiguous(), torch.unique(edges)))
    dense = ((num - num.mean(0)) / num.std(0).clamp_min(1e-9)).float()
    sparse = torch.cat([torch.tensor(cat_ids, dtype=torch.long), torch.stack(bucket_ids, 1)], dim=1)
    labels = torch.tensor([1.0 if r["income"].strip().startswith(">50K") else 0.0 for r in rows])
    names = (*CATEGORICAL, *(f"{c}_q" for c in NUMERIC))
    cards = tuple(max(1, len(vocab[c])) for c in CATEGORICAL) + tuple(
        int(b.max()) + 1 if b.numel() else 1 for b in bucket_ids)
    return CTRData("adult", dense, sparse, labels, tuple(names), cards)
