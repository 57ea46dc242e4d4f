"""Lowering: one rank's program from a transformed model (the `LowerForRank` pass, `lower_for_rank`).

Tier: above `model/` (it reads a `DmtModel`) and `runtime/` (the exchange and lookup modules it
places), below `training/`, which runs the programs.
"""
