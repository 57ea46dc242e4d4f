"""Capture: an arbitrary model as a flat-input fx GraphModule (tracer paths, torch.export, input flattening)."""
from dmt_compile.capture.capture import PATHS, Captured, CaptureReport, capture
from dmt_compile.capture.copying import copy_model

__all__ = ["capture", "Captured", "CaptureReport", "copy_model", "PATHS"]
