"""A test zoo of REAL public CTR libraries' own model classes, installed with `pip install --no-deps`.

Each `zoo_<lib>.py` builds every model class of one library at small sizes (batch 32, dim 16) and
exposes `MODELS` (name -> factory(batch_size, seed) -> (model, example_inputs)) and the pip lines it
needs in `REQUIREMENTS`. The libraries are imported lazily inside the factories; the tests skip a
library that is not installed (`.ci/run` installs them).
"""
from __future__ import annotations

import importlib

# library key -> (importable package, zoo module)
LIBRARIES = {
    "torchfm": ("torchfm", "zoo_torchfm"),
    "deepctr": ("deepctr_torch", "zoo_deepctr"),
    "rechub": ("torch_rechub", "zoo_rechub"),
    "torchctr": ("torchctr", "zoo_torchctr"),
    "widedeep": ("pytorch_widedeep", "zoo_widedeep"),
}

# Models whose own code is broken in the pinned release (they fail before any transform).
LIBRARY_BROKEN = {
    f"torchctr:{name}": "torchctr 0.2's Checker calls str(self) before nn.Module.__init__ (AttributeError: _modules)"
    for name in ("FieldAwareFactorizationMachine", "DeepFactorizationMachine", "NeuralFactorizationMachine",
                 "FieldAwareNeuralFactorizationMachine")
}
# Models that are random in eval mode, so no rewrite can reproduce a call exactly.
STOCHASTIC = {
    "torchfm:afm": "F.dropout without training=self.training (always on)",
    "rechub:MIND": "torch.randn routing logits in CapsuleNetwork.forward",
}
# Models no capture path can trace (data-dependent control flow that torch.export refuses too): none at
# present (rechub:DIEN's pack_padded_sequence over data-dependent lengths is one node since capture wraps it).
UNCAPTURABLE: dict[str, str] = {}


def zoo_module(lib: str):
    return importlib.import_module(f"real_zoo.{LIBRARIES[lib][1]}")


def installed(lib: str) -> bool:
    available = getattr(zoo_module(lib), "available", None)
    if available is not None:  # a zoo that imports its library its own way
        return available()
    try:
        importlib.import_module(LIBRARIES[lib][0])
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return False
    return True


def cases() -> list[tuple[str, str]]:
    return [(lib, name) for lib in LIBRARIES for name in zoo_module(lib).MODELS]
