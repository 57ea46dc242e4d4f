"""Capture: first contact with the user's model, and the model as a flat-input fx GraphModule.

The checks that need no run (`preconditions.py`), input flattening (once), the one eager run (the
reference output; every lookup's ids checked against its table), the tracer paths, torch.export,
and `copy_model`.
"""
from dmt_compile.capture.capture import PATHS, Captured, CaptureReport, capture
from dmt_compile.capture.copying import copy_model

__all__ = ["capture", "Captured", "CaptureReport", "copy_model", "PATHS"]
