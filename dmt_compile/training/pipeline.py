"""`IdsPipeline`: the next batch's ids cross the network while the current step computes.

Like TorchRec's ``TrainPipelineSparseDist``: before the forward of batch ``i``, the pipeline
computes batch ``i+1``'s ids (the *prologue*: the part of the rank's program that produces the
arguments of ``dist.ids``, usually a few input reads) and posts its peer id exchange on its own
point-to-point tag (:meth:`~dmt_compile.runtime.exchanges.PeerIdsExchange.prefetch`); the
forward of batch ``i+1`` then finds its ids already there. Only the small count exchange runs
in step (the sizes of what follows); lengths and values travel during batch ``i``'s compute.
Results are bitwise those of the plain loop. Every rank must run the same batches in the same
order; a forward whose ids differ from the prefetched ones raises ``RuntimeSetupError``.

    pipe = IdsPipeline(sharded)
    for batch, nxt in zip(batches, batches[1:] + [None]):
        out = pipe.forward(batch, next_batch=nxt)   # same call convention as sharded(*batch)
        loss(out).backward(); ...
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.fx as fx

from dmt_compile.errors import RuntimeSetupError
from dmt_compile.ir.module_paths import DIST_IDS

if TYPE_CHECKING:
    from dmt_compile.training.sharded import ShardedDmt

__all__ = ["IdsPipeline"]


def _prologue(gm: fx.GraphModule, ids_node: fx.Node) -> fx.GraphModule:
    """A GraphModule with the same inputs as `gm` that returns the arguments of `ids_node`."""
    needed: set[fx.Node] = set()
    stack = list(ids_node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in needed:
            needed.add(n)
            stack.extend(n.all_input_nodes)
    graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in gm.graph.nodes:
        if n.op == "placeholder" or n in needed:
            env[n] = graph.node_copy(n, lambda a: env[a])
    graph.output(fx.map_arg(tuple(ids_node.args), lambda a: env[a]))
    return fx.GraphModule(gm, graph, "IdsPrologue")


class IdsPipeline:
    """Prefetch the next batch's ids of a ``ShardedDmt`` (module docstring)."""

    def __init__(self, sharded: ShardedDmt):
        gm = sharded.gm
        node = next((n for n in gm.graph.nodes if n.op == "call_module" and n.target == DIST_IDS), None)
        if node is None:
            raise RuntimeSetupError("this program has no dist.ids exchange to prefetch",
                                    "build the pipeline on a ShardedDmt (lowered program)")
        self.gm, self.spec = gm, sharded.input_spec
        self.ids = gm.get_submodule(DIST_IDS)
        self.prologue = _prologue(gm, node)

    def _flat(self, args: tuple, kwargs: dict | None) -> list:
        return self.spec.flatten(tuple(args), dict(kwargs or {}))

    def prefetch(self, args: tuple, kwargs: dict | None = None) -> None:
        """Start the id exchange of the batch ``args`` now."""
        self.ids.prefetch(*self.prologue(*self._flat(args, kwargs)))

    def forward(self, args: tuple, kwargs: dict | None = None, *, next_batch: tuple | None = None,
                next_kwargs: dict | None = None) -> Any:
        """Forward of ``args`` (as ``sharded(*args, **kwargs)``) after posting ``next_batch``'s id exchange."""
        nxt = None if next_batch is None else self._flat(next_batch, next_kwargs)
        return self.forward_flat(self._flat(args, kwargs), nxt)

    def forward_flat(self, flat: list, next_flat: list | None = None) -> Any:
        """:meth:`forward` on flattened inputs (the rank program's placeholders, e.g. a ``BatchLayout`` slice)."""
        if not self.ids.prefetched():  # the first batch (or after a pause): its own exchange first
            self.ids.prefetch(*self.prologue(*flat))
        if next_flat is not None:
            self.ids.prefetch(*self.prologue(*next_flat))
        return self.gm(*flat)

    def reset(self) -> None:
        """Drop prefetched exchanges of batches that will not run (every rank must do the same)."""
        self.ids.drop_prefetched()
