"""The transformed model a single process holds: `DmtModel`, its state names, its portable graph.

`state_names.py` is the state-dict contract (original names for every original parameter and
buffer, `flat_state_dict`), `portable_graph.py` keeps the graph picklable across processes.

Tier: above `printing` (`DmtModel.dump`) and below `lowering`, which lowers a `DmtModel` per rank.
"""
from dmt_compile.model.dmt_model import DmtModel, flat_state_dict
from dmt_compile.model.state_names import OriginalState

__all__ = ["DmtModel", "OriginalState", "flat_state_dict"]
