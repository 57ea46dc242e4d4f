"""ReChorus's recommenders for the held-out capture measure, built and fed by ReChorus's own code.

ReChorus (THUwangcy/ReChorus) is no package: its models import `utils`, `helpers` and `models` from its
`src` folder. `RECHORUS_SRC` must name that folder of a checkout (measured at commit e58d7525):

    git clone https://github.com/THUwangcy/ReChorus /tmp/rechorus \
        && git -C /tmp/rechorus checkout e58d752558634d42be60de561d6f74df748583cc
    # then RECHORUS_SRC=/tmp/rechorus/src (only `src` is read) Its imports need
pandas, numpy, tqdm and, for the CTR runner, scikit-learn -- all already in this venv.

Each model is built as `main.py` builds it: arguments are the argparse defaults of its reader
(`reader_name.parse_data_args`), of `BaseRunner.parse_runner_args` and of the model
(`model_name.parse_model_args`), with `device` cpu and, for the context readers, the three
`include_*_features` flags on (their defaults are 0, which leaves a context model only user and item id).
The corpus is the model's own reader (`BaseReader`, `SeqReader`, `ContextReader`, `ContextSeqReader`,
`KGReader`, `KDAReader`) run on a small data set written in ReChorus's format into a temporary folder:
16 users with 8 time-ordered interactions each over 40 items (the last two per user are dev and test, with
9 `neg_items`), situation columns `c_hour_c`, `c_weekday_c`, `item_meta.csv` with `i_category_c`,
`i_brand_c` and the relation lists `r_complement`, `r_substitute`, `user_meta.csv` with `u_age_c`,
`u_gender_c` (the `_c` suffix marks a categorical feature, embedded; ReChorus's context data sets name
them so), and a `label` column for the CTR models. The batch is what the Runner feeds in training: `model.Dataset(model, corpus,
"train")`, `actions_before_epoch()` (negative sampling), then `collate_batch` of `batch_size` instances --
a dict of tensors plus `batch_size` (an int: most models `view(feed_dict["batch_size"], -1)`) and
`phase` ("train"). NumPy 2 has no `np.object`, which `collate_batch` names: the adapter sets it to
`object`, the alias it always was.

Measured: every model class of `context/`, `context_seq/`, `general/` and `sequential/` in both of its
modes (`...CTR` and `...TopK` for the context ones), each as its constructor leaves it, with these
construction details: FinalMLP embeds every context feature but its forward reads no user feature (a
width mismatch, 384 vs 512, with user features on), so it is measured without them; Chorus's default
`--stage 2` loads the KG model its stage 1 saves (`../model/Chorus/KG__...pt`), so the factory builds
stage 1, saves it as `main.py` would, then builds stage 2 (models are built in a `run` folder of the
temporary data set, where those relative paths land); TiMiRec's `finetune` stage finds no pretrained
extractor and trains from scratch, as its code logs; LightGCN's constructor moves its graph with
`.cuda()`, which a CPU-only torch rejects: while building, `Tensor.cuda` returns the tensor (it is then
where the model runs). Left out: the `...Impression` classes (BPRMF, LightGCN,
GRU4Rec, SASRec: the same networks as the classes measured, needing impression-labelled data), and
`developing/` and `reranker/`.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import os
import tempfile

import numpy as np
import torch

from heldout_sources import checkout_on_path

USERS, ITEMS, PER_USER, NEGS = 16, 40, 8, 9
FOLDERS = ("context", "context_seq", "general", "sequential")
_DATA: dict[bool, str] = {}


def _src() -> str:
    src = checkout_on_path("RECHORUS_SRC", "models", "ReChorus's src folder (see heldout_rechorus.py's docstring: "
                           "git clone https://github.com/THUwangcy/ReChorus DIR, then RECHORUS_SRC=DIR/src)")
    for alias, builtin in (("object", object), ("int", int)):  # aliases gone in NumPy 2 that ReChorus names
        if alias not in np.__dict__:
            setattr(np, alias, builtin)
    return src


def _write_data(ctr: bool) -> str:
    """A data set in ReChorus's csv format (tab-separated, list columns as python literals)."""
    if ctr in _DATA:
        return _DATA[ctr]
    import pandas as pd

    root = tempfile.mkdtemp(prefix="rechorus_")
    rng = np.random.default_rng(3)
    rows = {"train": [], "dev": [], "test": []}
    for u in range(1, USERS + 1):
        items = rng.choice(np.arange(1, ITEMS + 1), PER_USER, replace=False)
        for k, i in enumerate(items):
            phase = "train" if k < PER_USER - 2 else ("dev" if k == PER_USER - 2 else "test")
            row = {"user_id": u, "item_id": int(i), "time": 1000 * u + 60 * k + int(rng.integers(0, 50)),
                   "c_hour_c": int(rng.integers(0, 24)), "c_weekday_c": int(rng.integers(0, 7))}
            if ctr:
                row["label"] = int(rng.integers(0, 2))
            if phase != "train":
                row["neg_items"] = str([int(x) for x in rng.choice(np.setdiff1d(np.arange(1, ITEMS + 1), items),
                                                                   NEGS, replace=False)])
            rows[phase].append(row)
    os.makedirs(os.path.join(root, "synthetic"))
    for phase, r in rows.items():
        pd.DataFrame(r).to_csv(os.path.join(root, "synthetic", f"{phase}.csv"), sep="\t", index=False)
    items = pd.DataFrame({"item_id": np.arange(1, ITEMS + 1),
                          "i_category_c": rng.integers(1, 6, ITEMS), "i_brand_c": rng.integers(1, 9, ITEMS)})
    items["r_complement"] = [str([int(x) for x in rng.choice(np.arange(1, ITEMS + 1), 2, replace=False)])
                             for _ in range(ITEMS)]
    items["r_substitute"] = [str([int(x) for x in rng.choice(np.arange(1, ITEMS + 1), 1)]) for _ in range(ITEMS)]
    items.to_csv(os.path.join(root, "synthetic", "item_meta.csv"), sep="\t", index=False)
    pd.DataFrame({"user_id": np.arange(1, USERS + 1), "u_age_c": rng.integers(1, 7, USERS),
                  "u_gender_c": rng.integers(1, 3, USERS)}).to_csv(
        os.path.join(root, "synthetic", "user_meta.csv"), sep="\t", index=False)
    _DATA[ctr] = root
    return root


def _args(cls, reader_cls, ctr: bool, **override):
    from helpers.BaseRunner import BaseRunner

    from main import parse_global_args

    parser = parse_global_args(argparse.ArgumentParser())  # main.py's (random_seed, regenerate, ...)
    parser = reader_cls.parse_data_args(parser)
    parser = BaseRunner.parse_runner_args(parser)
    parser = cls.parse_model_args(parser)
    args = parser.parse_args([])
    args.path, args.dataset, args.device = _write_data(ctr), "synthetic", torch.device("cpu")
    for flag in ("include_item_features", "include_user_features", "include_situation_features"):
        if hasattr(args, flag):
            setattr(args, flag, 1)
    for key, value in override.items():
        setattr(args, key, value)
    return args


_CORPUS: dict = {}


def _corpus(reader_cls, args, ctr: bool):
    key = (reader_cls.__name__, ctr, args.include_user_features if hasattr(args, "include_user_features") else 0)
    if key not in _CORPUS:
        _CORPUS[key] = reader_cls(args)
    return _CORPUS[key]


@contextlib.contextmanager
def _building(root: str):
    """Models write and read pretrained files at '../model/...' (relative to the working folder): build in
    a folder of the temporary data set; LightGCN's constructor moves its graph with `.cuda()`, which on a
    CPU-only torch raises: there it returns the tensor, which is where the graph already is."""
    cwd, cuda = os.getcwd(), torch.Tensor.cuda
    os.makedirs(os.path.join(root, "run"), exist_ok=True)
    os.chdir(os.path.join(root, "run"))
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        os.chdir(cwd)
        torch.Tensor.cuda = cuda


def _build(cls, args, corpus):
    if cls.__name__ == "Chorus" and args.stage == 2:  # stage 2 loads the KG model stage 1 trains and saves
        stage1 = cls(argparse.Namespace(**{**vars(args), "stage": 1}), corpus)
        stage1.save_model()
    return cls(args, corpus)


def _factory(module_name: str, cls_name: str, **override):
    def make(batch_size: int = 32, seed: int = 0):
        _src()
        cls = getattr(importlib.import_module(module_name), cls_name)
        reader_cls = getattr(importlib.import_module(f"helpers.{cls.reader}"), cls.reader)
        ctr = cls.runner == "CTRRunner"
        args = _args(cls, reader_cls, ctr, **override)
        np.random.seed(seed)
        torch.manual_seed(seed)
        with _building(args.path):
            corpus = _corpus(reader_cls, args, ctr)
            np.random.seed(seed)
            torch.manual_seed(seed)
            model = _build(cls, args, corpus)  # its __init__ applies init_weights itself
        data = cls.Dataset(model, corpus, "train")
        data.actions_before_epoch()
        picks = np.random.default_rng(1000 + seed).choice(len(data), batch_size, replace=len(data) < batch_size)
        return model, (data.collate_batch([data[int(i)] for i in picks]),)

    return make


def models() -> dict:
    _src()
    from models.BaseModel import BaseModel

    out = {}
    for folder in FOLDERS:
        for fname in sorted(os.listdir(os.path.join(_src(), "models", folder))):
            if not fname.endswith(".py") or fname == "__init__.py":
                continue
            module_name = f"models.{folder}.{fname[:-3]}"
            module = importlib.import_module(module_name)
            for name, cls in inspect.getmembers(module, inspect.isclass):
                if (cls.__module__ == module_name and issubclass(cls, BaseModel) and "Impression" not in name
                        and isinstance(getattr(cls, "reader", None), str)):
                    # FinalMLP embeds every context feature but its forward reads no user feature (a width
                    # mismatch): measured without user features
                    extra = {"include_user_features": 0} if name.startswith("FinalMLP") else {}
                    out[name] = _factory(module_name, name, **extra)
    return out
