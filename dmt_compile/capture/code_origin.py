"""Whether a source file is torch's or dmt_compile's own code, or the model's (by package folder).

A model library may have a `torch/` subpackage of its own (`site-packages/transformers4rec/torch/...`),
so "/torch/" anywhere in a path is no test: a file is torch's when it lies under torch's package
folder. Capture's answers to model code (`builtin_queries`) and its reports of the model's own
source line (`tracer`, `capture`) ask this.
"""
from __future__ import annotations

import os
import sys

import torch

__all__ = ["is_torch_or_own_file"]

# torch's and dmt_compile's own package folders; a model library's `torch/` subpackage
# (`site-packages/<library>/torch/...`) is model code, so "/torch/" anywhere in the path is no test
_LIBRARY_ROOTS = tuple(os.path.dirname(os.path.abspath(m.__file__)).replace("\\", "/") + "/"
                       for m in (torch, sys.modules[__name__.split(".")[0]]))


def is_torch_or_own_file(filename: str) -> bool:
    """Whether `filename` is torch's or dmt_compile's own code (not the model's, whatever its folder names)."""
    return os.path.abspath(filename).replace("\\", "/").startswith(_LIBRARY_ROOTS)
