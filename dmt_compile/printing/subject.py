"""`PrintedModel`: what the printer reads of a transformed model (a `DmtModel` is one).

The printer sits below `model/` (`DmtModel.dump` calls it), so it names the attributes it reads
instead of importing the class.
"""
from __future__ import annotations

from typing import Protocol

import torch.fx as fx

from dmt_compile.capture import CaptureReport
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.topo import Topology

__all__ = ["PrintedModel"]


class PrintedModel(Protocol):
    """The attributes of a `DmtModel` the printer reads."""

    graph_module: fx.GraphModule
    plan: TowerPlan
    detection: Detection
    capture_report: CaptureReport
    topology: Topology
