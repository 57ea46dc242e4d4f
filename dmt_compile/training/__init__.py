"""Training a transformed model on a process group: the sharded module, `distribute`, the gradient
reducer, per-rank logging, the ids pipeline, checkpoints and the batch layout.

Tier: above `lowering` (it runs the per-rank programs `lower_for_rank` builds) and below `api`
(`transform` never reaches it).
"""
