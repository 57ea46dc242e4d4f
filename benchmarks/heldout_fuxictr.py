"""FuxiCTR's models for the held-out capture measure, built from a stand-in feature map.

FuxiCTR's wheel (`pip install fuxictr`, 2.3.x) ships its base classes (`BaseModel`, `MultiTaskModel`),
its layers and its `FeatureMap`, but not its models: they live in the repository's `model_zoo`
(one folder per model, `src/` a package of PyTorch classes, `config/model_config.yaml` the settings
its own tests run with). The measure imports every PyTorch model class found under the folder named by
`FUXICTR_MODEL_ZOO` (a checkout of FuxiCTR's `model_zoo`; the TensorFlow copies `*_tf` and the
`LongCTR` collection, which needs long-sequence datasets, are left out) and builds it with the
settings of its own test experiment (the one on a `tiny_*` dataset, else its template), hidden
layers cut to at most 32 units.

Two stand-in feature maps, named after the tiny datasets the model configs refer to:

* flat (the configs on `tiny_parquet`, `tiny_npz`, `tiny_csv`): five categorical fields from three
  sources, one numeric field, and one token-sequence field pooled by FuxiCTR's own
  `MaskedAveragePooling` feature encoder;
* sequence (`tiny_seq`): categorical fields and a behaviour sequence `click_sequence` that shares
  `adgroup_id`'s table, read by the target-attention models (DIN, DIEN, BST, DMIN, DMR, TransAct).

Multi-task models (`tiny_mtl`) get the flat map with two labels.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys
from collections import OrderedDict

import torch

SEQ_LEN = 5
_CATEGORICAL = (("userid", "user", 26), ("age_level", "user", 7), ("adgroup_id", "item", 96),
                ("cate_id", "item", 49), ("brand", "item", 67), ("pid", "context", 4))
_SKIP_DIRS = ("LongCTR",)


def _features(kind: str) -> OrderedDict:
    feats = OrderedDict((name, {"source": src, "type": "categorical", "padding_idx": 0, "vocab_size": n})
                        for name, src, n in _CATEGORICAL)
    if kind == "seq":
        feats["click_sequence"] = {"source": "user", "type": "sequence", "share_embedding": "adgroup_id",
                                   "padding_idx": 0, "vocab_size": 96, "max_len": SEQ_LEN}
    else:
        feats["price"] = {"source": "item", "type": "numeric"}
        feats["tags"] = {"source": "user", "type": "sequence", "padding_idx": 0, "vocab_size": 13,
                         "max_len": SEQ_LEN, "feature_encoder": "layers.MaskedAveragePooling()"}
    return feats


def _stand_in_ray() -> None:
    """fuxictr imports ray (its parquet preprocessing) when its layers are imported; the measure never
    preprocesses, so where ray is not installed empty modules with the three names it imports stand in."""
    try:
        import ray  # noqa: F401
        return
    except ImportError:
        pass
    import types

    for name in ("ray", "ray.data", "ray.data.datasource", "ray.data.datasource.filename_provider"):
        sys.modules[name] = types.ModuleType(name)
    sys.modules["ray.data.datasource.filename_provider"].FilenameProvider = object
    sys.modules["ray.data"].SaveMode = sys.modules["ray.data"].TaskPoolStrategy = object


def feature_map(kind: str, labels: list[str], embedding_dim: int):
    from fuxictr.features import FeatureMap

    fmap = FeatureMap(f"standin_{kind}", "/nonexistent")
    fmap.features = _features(kind)
    fmap.labels = list(labels)
    fmap.default_emb_dim = embedding_dim
    fmap.num_fields = fmap.get_num_fields()
    fmap.total_features = sum(s.get("vocab_size", 1) for s in fmap.features.values())
    fmap.set_column_index()
    return fmap


def inputs(fmap, batch_size: int, seed: int) -> dict:
    """One batch as FuxiCTR's data loaders give it: one tensor per feature and per label."""
    g = torch.Generator().manual_seed(2000 + seed)
    out = {}
    for name, spec in fmap.features.items():
        if spec["type"] == "categorical":
            out[name] = torch.randint(1, spec["vocab_size"], (batch_size,), generator=g)
        elif spec["type"] == "numeric":
            out[name] = torch.rand(batch_size, generator=g)
        else:  # left-aligned sequences with zero padding, at least one id each
            seq = torch.randint(1, spec["vocab_size"], (batch_size, spec["max_len"]), generator=g)
            lengths = torch.randint(1, spec["max_len"] + 1, (batch_size, 1), generator=g)
            out[name] = seq * (torch.arange(spec["max_len"]).unsqueeze(0) < lengths)
    for label in fmap.labels:
        out[label] = torch.randint(0, 2, (batch_size,), generator=g).float()
    return out


# ----------------------------------------------------------------------------------------------------------
# the model zoo
# ----------------------------------------------------------------------------------------------------------
def _load_src(src_dir: str):
    name = "fuxictr_zoo_" + os.path.relpath(os.path.dirname(src_dir), _zoo()).replace(os.sep, "_")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(src_dir, "__init__.py"),
                                                  submodule_search_locations=[src_dir])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _zoo() -> str:
    path = os.environ.get("FUXICTR_MODEL_ZOO")
    if not path or not os.path.isdir(path):
        raise SystemExit("fuxictr: set FUXICTR_MODEL_ZOO to a checkout of FuxiCTR's model_zoo folder "
                         "(the wheel ships no models)")
    return path


def _experiments(config_path: str) -> dict:
    import yaml

    with open(config_path) as f:
        configs = yaml.safe_load(f) or {}
    base = configs.pop("Base", {}) or {}
    return {k: {**base, **v} for k, v in configs.items() if isinstance(v, dict) and "model" in v}


def _config_for(name: str, experiments: dict) -> dict | None:
    mine = [v for v in experiments.values() if v["model"] == name]
    tiny = [v for v in mine if str(v.get("dataset_id", "")).startswith("tiny")]
    return (tiny or mine or [None])[0]


def _small(config: dict) -> dict:
    out = dict(config)
    for key, value in config.items():
        if isinstance(value, list) and value and all(isinstance(x, int) and not isinstance(x, bool)
                                                     for x in value) and "units" in key:
            out[key] = [min(x, 32) for x in value]
    out["embedding_dim"] = min(int(out.get("embedding_dim") or 4), 8)
    return out


def _factory(cls, config: dict):
    dataset = str(config.get("dataset_id", ""))
    kind = "seq" if dataset == "tiny_seq" else "flat"
    tasks = int(config.get("num_tasks", 1) or 1)
    labels = ["clk"] if tasks == 1 else [f"label_{i}" for i in range(tasks)]
    settings = {k: v for k, v in _small(config).items()
                if k not in ("model", "dataset_id", "model_root", "gpu", "verbose")}
    settings.update(model_root="/tmp/fuxictr_models", gpu=-1, verbose=0)

    def make(batch_size: int = 32, seed: int = 0):
        torch.manual_seed(seed)
        fmap = feature_map(kind, labels, settings["embedding_dim"])
        model = cls(fmap, **settings)
        return model, (inputs(fmap, batch_size, seed),)

    return make


def models() -> dict:
    """name -> factory(batch_size, seed) -> (model, (inputs,)) for every PyTorch model class in the zoo."""
    _stand_in_ray()
    from fuxictr.pytorch.models import BaseModel, MultiTaskModel

    out = {}
    for init in sorted(glob.glob(os.path.join(_zoo(), "**", "src", "__init__.py"), recursive=True)):
        src = os.path.dirname(init)
        model_dir = os.path.dirname(src)
        rel = os.path.relpath(model_dir, _zoo())
        if rel.endswith("_tf") or rel.split(os.sep)[0] in _SKIP_DIRS:
            continue
        config_path = os.path.join(model_dir, "config", "model_config.yaml")
        experiments = _experiments(config_path) if os.path.exists(config_path) else {}
        try:
            module = _load_src(src)
        except Exception as e:  # noqa: BLE001 - a model folder that does not import is not runnable
            out[rel] = _not_importable(e)
            continue
        for attr in sorted(dir(module)):
            cls = getattr(module, attr)
            if not (isinstance(cls, type) and issubclass(cls, (BaseModel, MultiTaskModel))
                    and cls not in (BaseModel, MultiTaskModel)):
                continue
            config = _config_for(attr, experiments)
            if config is not None and attr not in out:
                out[attr] = _factory(cls, config)
    return out


def _not_importable(error: Exception):
    def make(batch_size: int = 32, seed: int = 0):
        raise RuntimeError(f"model folder does not import: {type(error).__name__}: {error}")

    return make
