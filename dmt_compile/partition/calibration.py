"""Calibration: each lookup's outputs on sample batches (what the learned partitioner measures)."""
from __future__ import annotations

from typing import Any, Sequence

import torch.fx as fx

from dmt_compile.ir.detection import Detection
from dmt_compile.ir.evaluation import evaluation

__all__ = ["collect_lookup_outputs"]


class _LookupRecorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule, wanted: dict[str, int]):
        super().__init__(gm)
        self.wanted = wanted
        self.seen: dict[int, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        if n.name in self.wanted:
            value = out.values() if type(out).__name__ == "KeyedTensor" else out
            self.seen[self.wanted[n.name]] = value.detach()
        return out


def collect_lookup_outputs(gm: fx.GraphModule, detection: Detection, flat_batches: Sequence[list]) -> dict[int, list]:
    """Run the (not yet rewritten) graph on calibration batches; each lookup's outputs per batch."""
    wanted = {lk.node: lk.index for lk in detection.lookups}
    out: dict[int, list] = {i: [] for i in wanted.values()}
    with evaluation(gm):
        for flat in flat_batches:
            rec = _LookupRecorder(gm, wanted)
            rec.run(*flat)
            for i, v in rec.seen.items():
                out[i].append(v)
    return out
