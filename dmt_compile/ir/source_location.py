"""Where in the model's own code a graph node came from, for one-line error messages."""
from __future__ import annotations

import re

import torch.fx as fx

__all__ = ["source_location"]

_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def source_location(node: fx.Node) -> str:
    """` (at file.py:12 in forward)` from the node's recorded stack trace (innermost model frame), or ""."""
    trace = node.stack_trace or ""
    frames = [m for m in _FRAME.finditer(trace) if "/torch/" not in m.group(1) and "/dmt_compile/" not in m.group(1)]
    if not frames:
        return ""
    path, line, fn = frames[-1].groups()
    return f" (at {path.rsplit('/', 1)[-1]}:{line} in {fn})"
