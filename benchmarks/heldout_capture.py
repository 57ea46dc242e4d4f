"""Capture measure on public CTR libraries: every model class, at small synthetic feature configs.

For each model the measure records one outcome:

* ``exact``   -- `transform(model, "2x2", inputs)` gives >= 2 towers when there are >= 2 features, equals
  the original model exactly (eval mode) at batch 32 and at batch 7, and linear c=4 towers train:
  15 Adam steps at lr 0.01 on a fixed batch lower the loss (the check of tests/real_zoo), or, where
  they do not, the flat model fails that check too and the rewrite descends to first order
  (tests/fuzz_checks.py);
* ``typed``   -- a `DmtError` that names what stopped it (a `PassError` wrapping a non-dmt exception is a
  crash, not a refusal); where the default plan gave one tower for >= 2 features, the measure asks for
  `num_towers=2` and a typed refusal then (e.g. every feature reads one shared table) counts here;
* ``wrong``   -- it transformed but gave too few towers (and 2 asked for explicitly are not refused with a
  typed error), an inexact output, or did not train;
* ``crash``   -- any other exception (its class and the innermost dmt_compile frame are recorded);
* ``not-runnable`` -- the library's own model fails to build or to run eagerly at these sizes, or is
  random in eval mode (two calls on the same inputs differ, so no rewrite can equal a call).

Libraries: the zoos of tests/real_zoo (`torchfm`, `deepctr`, `rechub`, `torchctr`, `widedeep`) and
`recbole` (its context-aware models, built from a stand-in dataset and config defined below) and
`fuxictr` (every PyTorch model of FuxiCTR's model zoo, from stand-in feature maps: heldout_fuxictr.py;
`FUXICTR_MODEL_ZOO` names the zoo folder of a FuxiCTR checkout, since the wheel ships no models),
and the tabular libraries with categorical embeddings: `tabtransformer` (tab-transformer-pytorch:
heldout_tabtransformer.py), `rtdl_revisiting` and `rtdl` (Yandex's rtdl_revisiting_models and rtdl:
heldout_rtdl.py), `pytorch_tabular` (its models built from their config objects without the trainer:
heldout_pytorch_tabular.py), and `mlgb` (its PyTorch ranking, multi-task and matching models:
heldout_mlgb.py), the collaborative-filtering libraries `daisy` (DaisyRec: heldout_daisy.py),
`torchrecsys` (heldout_torchrecsys.py) and `recpack` (its torch modules: heldout_recpack.py), and
`tabnet` (pytorch-tabnet's networks: heldout_tabnet.py) and `torch_frame` (PyTorch Frame's models,
which take a `TensorFrame`: heldout_torch_frame.py). First runs (saved before any fix as
results/heldout/first_run_<lib>.jsonl, reruns beside them as first_run_<lib>_after.jsonl): `rec4torch`,
`deepmatch_torch` (DeepMatch-Torch), `librecommender` (its TensorFlow-free torch modules) and
`transformers4rec` (NVIDIA Transformers4Rec's PyTorch API, models built from a merlin Schema:
heldout_transformers4rec.py), and two code bases that are no packages, read from a checkout named by
an environment variable: `rechorus` (ReChorus's models, built and batched by its own readers and
Dataset: heldout_rechorus.py, `RECHORUS_SRC`) and `fb_dlrm` (facebookresearch/dlrm's `DLRM_Net` in its
command line's configurations: heldout_fb_dlrm.py, `FB_DLRM_SRC`); then `rectools` (its transformer
backbones: heldout_rectools.py), `replay` (RePlay's SasRec and TwoTower: heldout_replay.py) and `spotlight`
(Spotlight's networks, from a checkout: heldout_spotlight.py, `SPOTLIGHT_SRC`).

Training uses Adam; the gradient of a `sparse=True` table (DLRM's) is handed to it in dense form (Adam
rejects sparse gradients; the step is the one a `sparse=False` table gets).

Usage:
    python benchmarks/heldout_capture.py widedeep recbole [--out results.jsonl] [--models TabMlp,FM]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections import Counter

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dmt_compile  # noqa: E402
from dmt_compile.capture.copying import copy_model  # noqa: E402
from dmt_compile.errors import DmtError, PassError  # noqa: E402
from dmt_compile.tools.verify import first_tensor  # noqa: E402

TIMEOUT_S = 180


# ----------------------------------------------------------------------------------------------------------
# recbole (context-aware recommenders): a stand-in dataset with the four feature types recbole knows.
# ----------------------------------------------------------------------------------------------------------
RECBOLE_MODELS = ("AFM", "AutoInt", "DCN", "DCNV2", "DeepFM", "DSSM", "EulerNet", "FFM", "FiGNN", "FM", "FNN",
                  "FwFM", "KD_DAGFM", "LR", "NFM", "PNN", "WideDeep", "xDeepFM")
# field -> (type, vocabulary or 1, source); TOKEN_SEQ has length 4, FLOAT holds (value, index) pairs
RECBOLE_FIELDS = {
    "user_id": ("TOKEN", 20, "USER_ID"), "age": ("TOKEN", 6, "USER"), "price": ("FLOAT", 1, "ITEM"),
    "item_id": ("TOKEN", 30, "ITEM_ID"), "brand": ("TOKEN", 8, "ITEM"), "tags": ("TOKEN_SEQ", 12, "ITEM"),
    "hour": ("TOKEN", 24, "INTERACTION"), "label": ("FLOAT", 1, "INTERACTION"),
}


class _RecboleConfig(dict):
    def __missing__(self, key):  # recbole's Config answers None for an unset key
        return None

    def __getattr__(self, key):  # and reads keys as attributes too (EulerNet: config.embedding_size)
        if key.startswith("__"):
            raise AttributeError(key)
        return self if key == "final_config_dict" else self[key]  # KD_DAGFM reads the whole dict


class _RecboleDataset:
    """What ContextRecommender reads from a recbole Dataset: fields by source, their types and sizes."""

    def __init__(self):
        from recbole.utils import FeatureType

        self.field2type = {f: getattr(FeatureType, t) for f, (t, _, _) in RECBOLE_FIELDS.items()}

    def fields(self, ftype=None, source=None):
        names = {s.name for s in source} if source is not None else None
        return [f for f, (_, _, src) in RECBOLE_FIELDS.items() if names is None or src in names]

    def num(self, field):
        return RECBOLE_FIELDS[field][1] + (1 if RECBOLE_FIELDS[field][0].startswith("TOKEN") else 0)


def _recbole_config(name: str):
    import yaml
    import recbole

    path = os.path.join(os.path.dirname(recbole.__file__), "properties", "model", f"{name}.yaml")
    config = _RecboleConfig(yaml.safe_load(open(path)) or {})
    config.update(LABEL_FIELD="label", device=torch.device("cpu"), numerical_features=["price"])
    config.setdefault("double_tower", False)
    # small sizes: the measure is about capture, not capacity
    for key, small in (("mlp_hidden_size", [32, 16]), ("cin_layer_size", [8, 8]), ("t_cin", [8, 8]),
                       ("low_rank", 8), ("cross_layer_num", 2), ("order_list", [8])):
        if key in config:
            config[key] = small
    config["embedding_size"] = 16
    return config


def _recbole_inputs(batch_size: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(1000 + seed)
    out = {}
    for f, (t, n, _) in RECBOLE_FIELDS.items():
        if t == "TOKEN":
            out[f] = torch.randint(1, n + 1, (batch_size,), generator=g)
        elif t == "TOKEN_SEQ":
            seq = torch.randint(1, n + 1, (batch_size, 4), generator=g)
            keep = torch.arange(4).unsqueeze(0) < torch.randint(1, 5, (batch_size, 1), generator=g)
            out[f] = seq * keep
        elif f != "label":
            out[f] = torch.stack([torch.rand(batch_size, generator=g), torch.zeros(batch_size)], dim=1)
    return out


def _recbole_factory(name: str):
    def make(batch_size: int = 32, seed: int = 0):
        import recbole.model.context_aware_recommender as cam

        torch.manual_seed(seed)
        model = getattr(cam, name)(_recbole_config(name), _RecboleDataset())
        return model, (_recbole_inputs(batch_size, seed),)

    return make


def library_models(lib: str) -> dict:
    if lib == "recbole":
        return {name: _recbole_factory(name) for name in RECBOLE_MODELS}
    if lib == "fuxictr":
        import heldout_fuxictr

        return heldout_fuxictr.models()
    if lib == "tabtransformer":
        import heldout_tabtransformer

        return heldout_tabtransformer.models()
    if lib == "mlgb":
        import heldout_mlgb

        return heldout_mlgb.models()
    if lib in ("daisy", "torchrecsys", "recpack"):
        import importlib

        return importlib.import_module(f"heldout_{lib}").models()
    if lib == "pytorch_tabular":
        import heldout_pytorch_tabular

        return heldout_pytorch_tabular.models()
    if lib in ("rtdl", "rtdl_revisiting"):
        import heldout_rtdl

        return heldout_rtdl.rtdl_models() if lib == "rtdl" else heldout_rtdl.revisiting_models()
    # -- tabular libraries measured on their first run: pytorch-tabnet, PyTorch Frame ----------------------
    if lib == "tabnet":
        import heldout_tabnet

        return heldout_tabnet.models()
    if lib == "torch_frame":
        import heldout_torch_frame

        return heldout_torch_frame.models()
    # -----------------------------------------------------------------------------------------------------
    import importlib.util

    if importlib.util.find_spec(f"heldout_{lib}") is not None:  # a library's adapter: heldout_<lib>.py
        return importlib.import_module(f"heldout_{lib}").models()
    import real_zoo

    return real_zoo.zoo_module(lib).MODELS


# ----------------------------------------------------------------------------------------------------------
# the measure
# ----------------------------------------------------------------------------------------------------------
class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout(f"over {TIMEOUT_S} s")


def _eval(model, inputs):
    model.eval()
    with torch.no_grad():
        return first_tensor(model(*inputs))


def _adam_losses(model, inputs, target) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = ((first_tensor(model(*inputs)) - target) ** 2).mean()
        loss.backward()
        for p in model.parameters():  # sparse=True tables (DLRM's) give sparse gradients, which Adam rejects:
            if p.grad is not None and p.grad.is_sparse:  # the same step on their dense form
                p.grad = p.grad.to_dense()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _falls(losses: list[float]) -> bool:
    return all(map(_finite, losses)) and min(losses[-3:]) < losses[0]


def _trains(model, inputs) -> dict:
    """Adam at lr 0.01 lowers the loss (tests/real_zoo's check); where it does not, whether the flat model
    fails it too and whether the rewrite descends to first order (tests/fuzz_checks.py)."""
    from fuzz_checks import assert_first_order_descent

    flat = copy_model(model).train()
    model.train()
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)
    dmt.train()
    target = torch.rand(first_tensor(dmt(*inputs)).shape, generator=torch.Generator().manual_seed(7))
    descent = copy_model(dmt)
    losses = _adam_losses(dmt, inputs, target)
    if _falls(losses):
        return {}
    flat_losses = _adam_losses(flat, inputs, target)
    try:
        assert_first_order_descent(descent, inputs, {})
        descends = "yes"
    except AssertionError as e:
        descends = f"no: {e}"
    return {"losses": [round(x, 4) for x in losses], "flat_losses": [round(x, 4) for x in flat_losses],
            "flat_falls": _falls(flat_losses), "first_order_descent": descends}


def _check(factory) -> dict:
    """Long: one model through every stage; returns the first stage that is not as it should be."""
    try:
        model, inputs = factory(batch_size=32, seed=0)
        reference = _eval(model, inputs)
        random_in_eval = not _nan_equal(_eval(model, inputs), reference)
        _, small = factory(batch_size=7, seed=1)
        # on a copy: a model that writes into its own buffers on a call (YoutubeSBC's "last batch" path
        # subtracts in place from a slice of its index buffer) must not change the model transformed below;
        # copied as transform copies it (a model holding a `dict_keys` view cannot be deep-copied)
        reference_small = _eval(copy_model(model), small)
    except Exception as e:  # noqa: BLE001 - the library itself fails: not ours to measure
        return {"outcome": "not-runnable", "stage": "eager", "error": f"{type(e).__name__}: {_line(e)}"}
    if random_in_eval:  # no rewrite can reproduce a call exactly (torchfm's AFM: F.dropout always on)
        return {"outcome": "not-runnable", "stage": "eager",
                "error": "random in eval mode: two calls on the same inputs differ"}
    stage = "transform"
    try:
        dmt = dmt_compile.transform(model, "2x2", inputs)
        features = len(dmt.detection.features)
        towers = dmt.plan.num_towers
        info = {"features": features, "groups": len(dmt.detection.groups), "towers": towers,
                "path": dmt.capture_report.path}
        if features >= 2 and towers < 2:
            return _two_towers_refused(model, inputs, info)
        stage = "exact"
        if not torch.equal(_eval(dmt, inputs), reference) and not _nan_equal(_eval(dmt, inputs), reference):
            return {"outcome": "wrong", "stage": "exact@32", **info}
        if not _nan_equal(_eval(dmt, small), reference_small):
            return {"outcome": "wrong", "stage": "exact@7", **info}
        if not torch.isfinite(reference).all():
            return {"outcome": "exact", "stage": "done (no train: the model returns NaN/inf)", **info}
        stage = "train"
        trains = _trains(model, inputs)
        if trains and (trains["flat_falls"] or trains["first_order_descent"] != "yes"):
            return {"outcome": "wrong", "stage": "train", **trains, **info}
        return {"outcome": "exact", "stage": "done" if not trains else "done (Adam fails for flat too)",
                **trains, **info}
    except Exception as e:  # noqa: BLE001 - classified below
        return _classify(e, stage)


def _two_towers_refused(model, inputs, info: dict) -> dict:
    """One tower for >= 2 features: asked for two, a typed refusal (naming what ties the features) is the
    outcome; two towers then mean the default plan was wrong."""
    try:
        dmt_compile.transform(model, "2x2", inputs, num_towers=2)
    except Exception as e:  # noqa: BLE001 - classified below
        return {**_classify(e, "towers (num_towers=2)"), **info}
    return {"outcome": "wrong", "stage": "towers", **info}


def _classify(e: BaseException, stage: str) -> dict:
    cause = e.cause if isinstance(e, PassError) else e
    typed = isinstance(e, DmtError) and isinstance(cause, DmtError) or (
        isinstance(e, DmtError) and not isinstance(e, PassError))
    where = ""
    for frame in reversed(traceback.extract_tb(cause.__traceback__ or e.__traceback__)):
        if "dmt_compile" in frame.filename:
            where = f"{os.path.relpath(frame.filename, ROOT)}:{frame.lineno}"
            break
    return {"outcome": "typed" if typed else "crash", "stage": stage,
            "error": f"{type(e).__name__}: {_line(e)}", "cause": type(cause).__name__, "where": where}


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else ""


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def _nan_equal(a, b) -> bool:
    return a.shape == b.shape and bool(torch.equal(torch.nan_to_num(a, 1.0), torch.nan_to_num(b, 1.0)))


def measure(lib: str, only: set[str] | None = None) -> list[dict]:
    rows = []
    for name, factory in library_models(lib).items():
        if only and name not in only:
            continue
        start = time.time()
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(TIMEOUT_S)
        try:
            row = _check(factory)
        except _Timeout as e:
            row = {"outcome": "crash", "stage": "timeout", "error": str(e)}
        finally:
            signal.alarm(0)
        row = {"library": lib, "model": name, **row, "seconds": round(time.time() - start, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> str:
    lines = ["| library | models | exact | typed refusal | wrong | crash | not runnable |",
             "|---|---|---|---|---|---|---|"]
    for lib in dict.fromkeys(r["library"] for r in rows):
        c = Counter(r["outcome"] for r in rows if r["library"] == lib)
        total = sum(c.values())
        lines.append(f"| {lib} | {total} | {c['exact']} | {c['typed']} | {c['wrong']} | {c['crash']} | "
                     f"{c['not-runnable']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("libraries", nargs="+", help="recbole, fuxictr, widedeep, torchfm, deepctr, rechub, torchctr, "
                                                 "tabtransformer, rtdl_revisiting, rtdl, pytorch_tabular, mlgb, daisy, "
                                                 "torchrecsys, recpack, tabnet, torch_frame, rec4torch, "
                                                 "deepmatch_torch, librecommender, transformers4rec, rechorus, "
                                                 "fb_dlrm, rectools, replay, spotlight")
    p.add_argument("--out", help="append one JSON line per model to this file")
    p.add_argument("--models", help="comma-separated model names (default: every model)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    only = set(args.models.split(",")) if args.models else None
    rows = [row for lib in args.libraries for row in measure(lib, only)]
    if args.out:
        with open(args.out, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    print(summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
