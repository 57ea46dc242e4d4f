"""Per-rank lowering of a transformed model onto the runtime, and the distributed module."""
