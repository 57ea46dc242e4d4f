"""Interoperability with TorchRec (optional: needs torchrec, see README "TorchRec"; imported lazily).

Forward (`torchrec_towers`): a transformed torchrec model's plan as an `EmbeddingTowerCollection`
with a `ParameterSharding` plan, and a `ShardingPlan` that places the original model's tables on
their towers' hosts. Reverse (`torchrec_pins`): a TorchRec plan's table placement as pins.

What TorchRec 1.8 does with them on CPU (gloo), as tests/training/test_torchrec_interop.py shows:
the tower collection's plan is built and accepted by the planner, but `DistributedModelParallel`
refuses to shard the towers: `ShardedEmbeddingTowerCollection` wraps each interaction in
`DistributedDataParallel(..., device_ids=[cpu])`, and DDP raises "DistributedDataParallel
device_ids and output_device arguments only work with single-device/multiple-device GPU modules
or CPU modules, but got device_ids [device(type='cpu')] ...". The original model with
`ebc_sharding_plan` runs unpatched and exactly. dmt_compile does not patch TorchRec.

Tier: above `api` (it reads a `DmtModel`), below `tools`.
"""
from __future__ import annotations

__all__ = ["to_torchrec_towers", "tower_sharding_plan", "ebc_sharding_plan", "pins_from_torchrec_plan",
           "towers_from_torchrec_plan"]


def __getattr__(name: str):
    if name in __all__:
        from dmt_compile.errors import require_torchrec

        require_torchrec(f"dmt_compile.interop.{name}")
    if name in ("to_torchrec_towers", "tower_sharding_plan", "ebc_sharding_plan"):
        from dmt_compile.interop import torchrec_towers

        return getattr(torchrec_towers, name)
    if name in ("pins_from_torchrec_plan", "towers_from_torchrec_plan"):
        from dmt_compile.interop import torchrec_pins

        return getattr(torchrec_pins, name)
    raise AttributeError(name)
