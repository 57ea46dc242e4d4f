"""MODEL_SPEC loading: `path/to/file.py:factory` or `package.module:factory`.

`factory()` returns `(model, example_inputs)`; example_inputs may be a tuple of positional
inputs or a single input.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import torch

from dmt_compile.ir.torch_notices import consume_fx_tracing_notice

from dmt_compile.errors import ModelSpecError

__all__ = ["load_model_spec"]


def _load_module(where: str):
    if where.endswith(".py") or os.sep in where:
        if not os.path.isfile(where):
            raise ModelSpecError(f"model file {where!r} does not exist", "give an existing path, e.g. examples/dlrm.py:factory")
        name = "dmt_model_spec_" + os.path.splitext(os.path.basename(where))[0]
        spec = importlib.util.spec_from_file_location(name, where)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        directory = os.path.dirname(os.path.abspath(where))
        sys.path.insert(0, directory)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelSpecError(f"importing {where!r} failed: {type(exc).__name__}: {exc}", "fix the model file") from exc
        finally:
            if sys.path and sys.path[0] == directory:
                sys.path.pop(0)
        return module
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise ModelSpecError(f"cannot import module {where!r}: {exc}", "check the module name and PYTHONPATH") from exc


def load_model_spec(spec: str, **factory_kwargs: Any) -> tuple[torch.nn.Module, tuple]:
    if ":" not in spec:
        raise ModelSpecError(
            f"MODEL_SPEC {spec!r} has no ':factory' part",
            "write path/to/file.py:factory or package.module:factory",
        )
    where, _, attr = spec.rpartition(":")
    consume_fx_tracing_notice()  # torchrec models build KeyedJaggedTensors (ir/torch_notices.py)
    module = _load_module(where)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelSpecError(f"{where!r} has no callable {attr!r}", "name a function that returns (model, example_inputs)")
    try:
        result = factory(**factory_kwargs)
    except Exception as exc:
        raise ModelSpecError(f"{spec} raised {type(exc).__name__}: {exc}", "fix the factory") from exc
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], torch.nn.Module)):
        raise ModelSpecError(
            f"{spec} must return (model, example_inputs), got {type(result).__name__}",
            "return a tuple (nn.Module, example_inputs)",
        )
    model, inputs = result
    return model, inputs if isinstance(inputs, tuple) else (inputs,)
