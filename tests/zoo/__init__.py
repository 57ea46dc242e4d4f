"""A zoo of flat CTR models written in the styles of different third-party code bases.

Each module exposes ``factory(batch_size=8, seed=0) -> (model, example_inputs)`` where
``example_inputs`` is a tuple of positional arguments. Modules are imported lazily so that
the torchrec entries cost nothing (and fail nowhere) when torchrec is not installed.
"""
from __future__ import annotations

import importlib

from torch.fx.proxy import TraceError

ZOO: dict[str, str] = {
    "dict_dlrm": "m01_dict_dlrm",
    "deepfm_matrix": "m02_deepfm_matrix",
    "dcnv2_split_loop": "m03_dcnv2_split_loop",
    "embbag_jagged_widedeep": "m04_embbag_jagged_widedeep",
    "weighted_bag_youtube": "m05_weighted_bag_youtube",
    "shared_fibinet": "m06_shared_fibinet",
    "big_table_offsets_input": "m07_big_table_offsets_input",
    "xdeepfm_offsets_buffer": "m08_xdeepfm_offsets_buffer",
    "ffm": "m09_ffm",
    "torchrec_dlrm": "m10_torchrec_dlrm",
    "torchrec_dlrm_dcn": "m11_torchrec_dlrm_dcn",
    "torchrec_ebc_deepfm": "m12_torchrec_ebc_deepfm",
    "field_remap_dcn": "m13_field_remap_dcn",
    "autoint_dense_linear": "m14_autoint_dense_linear",
    "dlrm_list_inputs": "m15_dlrm_list_inputs",
    "widedeep_dim_check": "m16_widedeep_dim_check",
    "torchrec_ec_sequence": "m17_torchrec_ec_sequence",
    "export_only_type_check": "m18_export_only_type_check",
}

# Entries whose factory imports torchrec (skip them when it is absent).
REQUIRES_TORCHREC: set[str] = {"torchrec_dlrm", "torchrec_dlrm_dcn", "torchrec_ebc_deepfm", "torchrec_ec_sequence"}

# Entries on which plain ``torch.fx.symbolic_trace(model)`` fails, with the idiom and the
# exception type it raises (torch 2.13).
NOT_FX_TRACEABLE: dict[str, tuple[str, type]] = {
    "dict_dlrm": ("list(X.keys())[0] on a dict input", TraceError),
    "dcnv2_split_loop": ("for chunk in torch.split(emb, D, dim=1)", TraceError),
    "shared_fibinet": ("itertools.combinations(torch.unbind(emb, 1), 2)", TraceError),
    "field_remap_dcn": ("isinstance(x, torch.Tensor) check inside a submodule", TypeError),
    "autoint_dense_linear": ("if len(x.shape) != 3: raise ValueError in a submodule", RuntimeError),
    "dlrm_list_inputs": ("enumerate(list input) in root + len(x.shape) in a submodule", TraceError),
    "widedeep_dim_check": ("if x.dim() > 1: on an input in the root forward", TraceError),
    "export_only_type_check": ("isinstance(ids, torch.Tensor) check in the root forward", TypeError),
}

# Entries that carry a second trace breaker inside a submodule: name -> submodule attribute.
SUBMODULE_IDIOMS: dict[str, str] = {"dlrm_list_inputs": "interaction"}

# Entries whose train-mode output for one sample depends on the rest of the batch
# (BatchNorm1d in the MLP): compare them in eval() mode or on identical full batches.
BATCH_COUPLED: set[str] = {"xdeepfm_offsets_buffer", "export_only_type_check"}

# Output structure of the entries that do not return a plain [B, 1] tensor.
OUTPUT_KIND: dict[str, str] = {"shared_fibinet": "tuple", "embbag_jagged_widedeep": "dict"}


def module(name: str):
    return importlib.import_module(f".{ZOO[name]}", __name__)


def load(name: str, batch_size: int = 8, seed: int = 0):
    """Build zoo entry ``name``: returns ``(model, example_inputs)``."""
    return module(name).factory(batch_size=batch_size, seed=seed)
