"""The `node.meta` keys dmt_compile writes and the roles of the nodes it creates.

Every key lives under the `dmt.` namespace; `passes/README.md` lists which pass writes and
which stage reads each one. Use these names instead of string literals.
"""
from __future__ import annotations

from enum import Enum

__all__ = [
    "Role", "SHAPE", "DTYPE", "INPUT_PATH", "LOOKUP", "FEATURES", "GROUP", "TOWER", "ROLE", "FROM_PASS",
    "ID_ATOMS", "GUARD", "DEVICE", "BATCH_DIM",
]

SHAPE = "dmt.shape"  # example-input shape of the node's value (None for non-tensors)
DTYPE = "dmt.dtype"  # its dtype name, or "KeyedTensor" / "KeyedJaggedTensor"
DEVICE = "dmt.device"  # tensors: the torch.device of the example value
INPUT_PATH = "dmt.input_path"  # placeholders: where the leaf sits in the user's inputs, e.g. sparse['f0']
BATCH_DIM = "dmt.batch_dim"  # placeholders: the dim that carries samples (None: no batch dim; ir/batch_dims.py)
LOOKUP = "dmt.lookup"  # lookup nodes: index into Detection.lookups
FEATURES = "dmt.features"  # lookup nodes: feature names served
GROUP = "dmt.group"  # lookup nodes: feature-group index
TOWER = "dmt.tower"  # nodes belonging to a tower
ROLE = "dmt.role"  # a Role
FROM_PASS = "dmt.from_pass"  # provenance: the pass that created (or last re-tagged) the node
ID_ATOMS = "dmt.id_atoms"  # ids whose sources a pass knows better than the graph (split collections)
GUARD = "dmt.guard"  # guard nodes: the specialisation they check


class Role(str, Enum):
    """What a node does in the tower dataflow (printed as its value)."""

    IDS_EXCHANGE = "ids_exchange"  # a tower's ids go to the tower's host
    LOOKUP = "lookup"  # an embedding lookup inside a tower
    TOWER_MODULE = "tower_module"  # the Tower Module and its payload
    OUTPUTS_EXCHANGE = "outputs_exchange"  # the payload goes back to the sample owners
    REASSEMBLE = "reassemble"  # the payload, unpacked for the rest of the graph
    DECODER = "decoder"  # a per-tower decoder after the exchange (rebuilds the original widths)
    FEED = "feed"  # direct or hierarchical feed: compressed embeddings cut for the interaction

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)
