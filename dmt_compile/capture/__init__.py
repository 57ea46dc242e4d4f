"""Capture: an arbitrary model as a flat-input fx GraphModule (tracer paths, input flattening, model specs)."""
from dmt_compile.capture.capture import Captured, CaptureReport, capture, copy_model

__all__ = ["capture", "Captured", "CaptureReport", "copy_model"]
