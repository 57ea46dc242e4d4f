"""Refuse a model that is already transformed: transforming it again would nest towers inside towers.

A `DmtModel`, a graph with tower boundaries (`ids_exchange` / `outputs_exchange` nodes) or a lowered
per-rank program (the runtime's exchange and lookup modules), whole or as a submodule.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import InputError
from dmt_compile.ir.boundary import BOUNDARY_OPS
from dmt_compile.model.dmt_model import DmtModel
from dmt_compile.runtime.exchanges import PeerIdsExchange, PeerOutputsExchange, TowerLookup

__all__ = ["refuse_transformed"]


def _boundary_graph(m: torch.nn.Module) -> bool:
    return isinstance(m, fx.GraphModule) and any(
        n.op == "call_function" and n.target in BOUNDARY_OPS for n in m.graph.nodes)


def refuse_transformed(model: Any) -> None:
    """`InputError` when `model` is, or holds, a transformed model or a lowered per-rank program."""
    if not isinstance(model, torch.nn.Module):
        return  # capture's preconditions say what a model must be
    for name, m in model.named_modules():
        where = f"its submodule {name!r}" if name else "it"
        if isinstance(m, DmtModel) or _boundary_graph(m):
            what = "a DmtModel" if isinstance(m, DmtModel) else "a graph with DMT tower boundaries"
            raise InputError(
                f"the model is already transformed: {where} is {what} (ids_exchange / outputs_exchange nodes); "
                "transforming it again would nest towers inside towers",
                "pass the original model to transform, or use the DmtModel you have (dmt(...), dmt.plan); "
                "for another plan, transform the original model again")
        if isinstance(m, (PeerIdsExchange, PeerOutputsExchange, TowerLookup)):
            raise InputError(
                f"the model is already lowered for one rank: {where} is a {type(m).__name__} of the distributed "
                "runtime", "transform the original model; ShardedDmt lowers it per rank")
