"""dmt_compile: turn a flat recommendation model into a Disaggregated Multi-Tower model."""
from dmt_compile.api import DmtModel, choose_strategy, flat_state_dict, transform
from dmt_compile.errors import DmtError
from dmt_compile.training.distributed import DistributedDmt, distribute
from dmt_compile.ir.plan import TowerDetail, TowerPlan
from dmt_compile.topo import Topology

__all__ = ["transform", "choose_strategy", "DmtModel", "flat_state_dict", "distribute", "DistributedDmt", "TowerPlan", "TowerDetail", "Topology", "DmtError"]
__version__ = "0.1.0"
