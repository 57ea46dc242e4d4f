"""Torch notices that say nothing about the user's model, handled where they arise.

torch's `is_fx_tracing()` logs, once per process, that it "will return true for both
fx.symbolic_trace and torch.export". TorchRec calls it whenever a `KeyedJaggedTensor` is built,
so every torchrec model printed that line on load and on capture although nothing is wrong.
`consume_fx_tracing_notice()` lets torch emit that one-time notice into a muted logger, so it is
spent; with `-v` (the `dmt_compile` logger at INFO or below) it is left alone and torch prints it.
"""
from __future__ import annotations

import logging

__all__ = ["consume_fx_tracing_notice"]


def consume_fx_tracing_notice() -> None:
    """Spend torch's one-time `is_fx_tracing` notice silently unless the user asked for `-v`."""
    if logging.getLogger("dmt_compile").isEnabledFor(logging.INFO):
        return
    try:
        from torch.fx._symbolic_trace import is_fx_tracing_warning
    except ImportError:  # another torch release without the notice
        return
    logger = logging.getLogger("torch.fx._symbolic_trace")
    disabled = logger.disabled
    logger.disabled = True
    try:
        is_fx_tracing_warning()  # lru_cached by torch: later calls print nothing
    finally:
        logger.disabled = disabled
