"""Models for the wire-codec tests: the DLRM example in float64 (its exchanges must stay exact by default)."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

from dlrm import factory as _dlrm  # noqa: E402


def dlrm_float64(batch_size: int = 8, seed: int = 0):
    model, (dense, sparse) = _dlrm(batch_size, seed)
    return model.double(), (dense.double(), sparse)
