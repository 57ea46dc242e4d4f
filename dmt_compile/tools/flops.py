"""Forward FLOPs per sample of the flat model and of its DMT transform (printed by `plan` and `dump`).

Counted by `torch.utils.flop_counter.FlopCounterMode` on the example inputs (lookups count no FLOPs,
so this is the compute of everything after them: flat's interaction and dense layers, DMT's Tower
Modules plus the global interaction over their outputs and the rebuilt layers). Per sample: divided
by the example batch. The Tower Modules' share is the modules named ``dmt.tower<t>_tm``.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["flops_per_sample", "flops_line"]

_TM = re.compile(r".*\.tower\d+_tm")


def flops_per_sample(model: Any, inputs: tuple, batch: int) -> tuple[float, float]:
    """(all forward FLOPs, the Tower Modules' FLOPs) per sample of one forward on `inputs`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(*inputs)
    tm = sum(sum(v.values()) for k, v in fc.get_flop_counts().items() if _TM.fullmatch(k))
    return fc.get_total_flops() / max(1, batch), tm / max(1, batch)


def flops_line(spec: str, dmt: Any, width: int = 120) -> str:
    """Forward FLOPs per sample, flat vs DMT (Tower Modules + the rest), and their ratio, wrapped to `width`."""
    import textwrap

    from dmt_compile.capture.model_spec import load_model_spec
    from dmt_compile.training.batching import infer_batch_layout

    model, inputs = load_model_spec(spec)
    batch = infer_batch_layout(dmt).batch
    flat, _ = flops_per_sample(model, inputs, batch)
    total, tm = flops_per_sample(dmt, inputs, batch)
    ratio = f"{total / flat:.2f}x flat" if flat else "flat has none"
    text = (f"forward FLOPs per sample: flat {flat / 1e3:,.1f}k; DMT {total / 1e3:,.1f}k = Tower Modules "
            f"{tm / 1e3:,.1f}k + global interaction and dense layers {(total - tm) / 1e3:,.1f}k ({ratio})")
    return textwrap.fill(text, width, subsequent_indent="    ") + "\n"
