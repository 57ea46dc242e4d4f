"""Topology, presets, networkx view and cost model (the partitioner lives beside them).

Heavy pieces (sympy expressions, networkx) load on first use of their names.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from dmt_compile.topo.spec import as_topology
from dmt_compile.topo.topology import Level, Topology

__all__ = [
    "Topology", "as_topology", "Level",
    # presets
    "PRESETS", "preset_names", "get_preset", "preset_topology",
    # network view
    "to_networkx", "to_dot",
    # cost model
    "CostParams", "Workload", "CostBreakdown", "evaluate", "predict_sptt", "predict_flat",
    "formula", "strategy_exprs", "STRATEGIES", "TERMS", "SYMBOLS",
    "torchrec_shard_perf",
    # fitted step model
    "predict_step", "Candidate", "StepParams",
]

_LAZY = {
    "PRESETS": "presets", "preset_names": "presets", "get_preset": "presets",
    "preset_topology": "presets",
    "to_networkx": "network", "to_dot": "network",
    "CostParams": "cost_symbols", "SYMBOLS": "cost_symbols",
    "Workload": "cost_model", "CostBreakdown": "cost_model", "evaluate": "cost_model",
    "predict_sptt": "cost_model", "predict_flat": "cost_model",
    "formula": "cost_exprs", "strategy_exprs": "cost_exprs", "STRATEGIES": "cost_exprs",
    "TERMS": "cost_exprs",
    "torchrec_shard_perf": "torchrec_compat",
    "predict_step": "cost_fit", "Candidate": "cost_fit", "StepParams": "cost_fit",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"dmt_compile.topo.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dmt_compile.topo' has no attribute {name!r}")
