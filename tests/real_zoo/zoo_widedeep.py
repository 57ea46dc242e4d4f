"""pytorch-widedeep (1.7.0) model zoo: every tabular and recommendation model class, inside `WideDeep`.

pytorch-widedeep models take ONE float matrix X [B, n_columns] laid out by `column_idx` (name -> column):
categorical columns hold label-encoded ids starting at 1 (0 is padding), continuous columns raw values.
Models "without attention" (TabMlp, TabResnet, TabNet, DCN, ...) embed each column in its own
`nn.Embedding` of an `nn.ModuleDict` (`X[:, col].long()`); models "with attention" (transformers, DeepFM,
AutoInt, ...) use ONE `nn.Embedding(sum(vocab) + 1, D)` over ids that the library's preprocessor already
shifted into per-column row ranges (`X[:, cat_idx].long()`, no offsets in the model). `WideDeep` wraps a
component with its prediction head and takes a dict {"wide": ..., "deeptabular": ...}; `Wide` is one
dim-1 table over pre-offset ids too.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import inspect
import sys
import types

import torch

REQUIREMENTS = [
    "pytorch-widedeep==1.7.0 --no-deps",
    "einops", "pandas", "scikit-learn", "tqdm", "scipy",  # imported by its models (the package __init__s are skipped)
]

VOCABS = (6, 9, 12, 7, 10)
N_CONT = 2
EMBED_DIM = 16


# pytorch-widedeep's package `__init__`s import its text and image stacks, which its tabular and rec models never
# call: these roots are served as modules of placeholder names (no torchvision wheel matches the CPU torch, and
# gensim / spacy / opencv / transformers are large; torchmetrics serves its Trainer only)
UNUSED_STACKS = ("torchvision", "gensim", "spacy", "cv2", "transformers", "PIL", "torchmetrics")


class _PlaceholderModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves any module under UNUSED_STACKS that is not installed: every attribute a placeholder class."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in UNUSED_STACKS:
            return None
        for finder in sys.meta_path:
            if finder is not self and getattr(finder, "find_spec", None) and finder.find_spec(name, path, target):
                return None if name.split(".")[0] != "torchvision" else importlib.util.spec_from_loader(name, self)
        return importlib.util.spec_from_loader(name, self, is_package=True)

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: _placeholder(attr, spec.name)
        return module

    def exec_module(self, module):
        pass


def _placeholder(attr: str, module: str):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return type(attr, (), {"__module__": module})


def widedeep_models() -> types.SimpleNamespace:
    """pytorch-widedeep's model classes (its text and image stacks stand-ins: see UNUSED_STACKS)."""
    if not any(isinstance(f, _PlaceholderModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _PlaceholderModules())
    from pytorch_widedeep.models import rec, tabular
    from pytorch_widedeep.models.wide_deep import WideDeep

    classes = {k: v for module in (tabular, rec) for k, v in vars(module).items() if isinstance(v, type)}
    return types.SimpleNamespace(WideDeep=WideDeep, **classes)


def available() -> bool:
    try:
        widedeep_models()
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return False
    return True


def _columns():
    cat = [f"c{i}" for i in range(len(VOCABS))]
    cont = [f"n{i}" for i in range(N_CONT)]
    return cat, cont, {name: i for i, name in enumerate(cat + cont)}


def _x(batch_size: int, seed: int, pre_offset: bool) -> torch.Tensor:
    """Ids 1..vocab per column (shifted into one id space when `pre_offset`), then continuous values."""
    g = torch.Generator().manual_seed(1000 + seed)
    cols, start = [], 0
    for v in VOCABS:
        ids = torch.randint(1, v + 1, (batch_size, 1), generator=g)
        cols.append((ids + (start if pre_offset else 0)).float())
        start += v
    cols.append(torch.rand(batch_size, N_CONT, generator=g))
    return torch.cat(cols, dim=1)


def _build(cls_name: str, attention: bool, batch_size: int, seed: int, wide: bool = False, **kwargs):
    wd = widedeep_models()
    torch.manual_seed(seed)
    cat, cont, column_idx = _columns()
    if attention:
        embed = [(c, v) for c, v in zip(cat, VOCABS)]
    else:
        embed = [(c, v, EMBED_DIM) for c, v in zip(cat, VOCABS)]
    cls = getattr(wd, cls_name)
    if "continuous_cols" in inspect.signature(cls).parameters:
        kwargs["continuous_cols"] = cont
    else:  # DeepFieldAwareFactorizationMachine: categorical columns only
        column_idx = {c: column_idx[c] for c in cat}
    component = cls(column_idx=column_idx, cat_embed_input=embed, **kwargs)
    parts = {"deeptabular": component}
    inputs = {"deeptabular": _x(batch_size, seed, pre_offset=attention)[:, : len(column_idx)]}
    if wide:
        parts["wide"] = wd.Wide(input_dim=sum(VOCABS) + 1, pred_dim=1)
        inputs["wide"] = _x(batch_size, seed, pre_offset=True)[:, : len(VOCABS)].long()
    return wd.WideDeep(**parts), (inputs,)


def _factory(cls_name: str, attention: bool, **kwargs):
    def make(batch_size: int = 32, seed: int = 0):
        return _build(cls_name, attention, batch_size, seed, **kwargs)

    make.__name__ = f"make_widedeep_{cls_name.lower()}"
    return make


_MLP = {"mlp_hidden_dims": [32, 16]}
_ATT = {"input_dim": EMBED_DIM, "n_heads": 2, "n_blocks": 2}

MODELS = {
    "Wide+TabMlp": _factory("TabMlp", False, wide=True, **_MLP),
    "TabMlp": _factory("TabMlp", False, **_MLP),
    "TabResnet": _factory("TabResnet", False, blocks_dims=[32, 16]),
    "TabNet": _factory("TabNet", False, n_steps=2, step_dim=8, attn_dim=8),
    "ContextAttentionMLP": _factory("ContextAttentionMLP", True, input_dim=EMBED_DIM, n_blocks=2),
    "SelfAttentionMLP": _factory("SelfAttentionMLP", True, input_dim=EMBED_DIM, n_heads=2, n_blocks=2),
    "TabTransformer": _factory("TabTransformer", True, embed_continuous=True, embed_continuous_method="standard",
                                **_ATT),
    "SAINT": _factory("SAINT", True, **_ATT),
    "FTTransformer": _factory("FTTransformer", True, **_ATT),
    "TabFastFormer": _factory("TabFastFormer", True, **_ATT),
    "TabPerceiver": _factory("TabPerceiver", True, input_dim=EMBED_DIM, n_latents=4, latent_dim=16,
                             n_cross_attn_heads=2, n_latent_heads=2, n_latent_blocks=1, n_perceiver_blocks=1),
}


_rec = _factory

MODELS.update({
    "DeepFactorizationMachine": _rec("DeepFactorizationMachine", True, num_factors=EMBED_DIM, **_MLP),
    "DeepFieldAwareFactorizationMachine": _rec("DeepFieldAwareFactorizationMachine", True, num_factors=4,
                                               **_MLP),
    "ExtremeDeepFactorizationMachine": _rec("ExtremeDeepFactorizationMachine", True, input_dim=EMBED_DIM,
                                            cin_layer_dims=[8, 8], **_MLP),
    "AutoInt": _rec("AutoInt", True, input_dim=EMBED_DIM, num_heads=2, num_layers=2, embed_continuous_method="standard"),
    "AutoIntPlus": _rec("AutoIntPlus", True, input_dim=EMBED_DIM, num_heads=2, num_layers=2,
                        embed_continuous_method="standard", **_MLP),
    "DeepCrossNetwork": _rec("DeepCrossNetwork", False, n_cross_layers=2, **_MLP),
    "DeepCrossNetworkV2": _rec("DeepCrossNetworkV2", False, num_cross_layers=2, **_MLP),
    "GatedDeepCrossNetwork": _rec("GatedDeepCrossNetwork", False, num_cross_layers=2, **_MLP),
})
