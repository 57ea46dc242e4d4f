"""What the model admits, gathered once: the tower plan, the feeds it can take, its dense compute.

`gather_facts(gm, ctx)` runs on the graph after `plan-towers` (captured once, not rewritten):

* compressing Tower Modules are refused for unpooled torchrec sequences (as `plan-feed` refuses
  them), and every SPTT candidate for a one-host topology (towers would not cross hosts);
* direct vs hierarchical feed is decided by ONE `plan-feed` trial (at c = 4): a shape-polymorphic
  model takes `direct`, one whose width-dependent layers can be rebuilt takes `hierarchical`,
  otherwise only decoders remain; the widths at every other c come from the structural half of
  `plan-feed` (no further trial);
* the dense part's forward FLOPs and operators per sample are read off the graph once, for
  predictors that price compute.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import TowerModuleError
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.feed import TowerFeed
from dmt_compile.ir.meta import LOOKUP, SHAPE
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.passes.base import PassContext
from dmt_compile.passes.plan_feed import (FeedNotApplicable, PlanFeed, decoder_tower_feed, direct_tower_feed,
                                         element_chains)

__all__ = ["ModelFacts", "DenseProfile", "gather_facts", "tower_feeds", "TRIAL_COMPRESSION"]

TRIAL_COMPRESSION = 4.0  # the c of the one feed trial


@dataclass(frozen=True)
class DenseProfile:
    """Forward FLOPs and operators per sample of everything but the lookups, and its parameters."""

    flops_per_sample: float
    ops: float  # operators per forward (a fixed cost per step, e.g. kernel launches)
    params: float  # data-parallel parameters (all-reduced every step)


@dataclass(frozen=True)
class ModelFacts:
    """What `enumerate_candidates` needs, from one capture and one tower plan."""

    plan: TowerPlan
    detection: Detection
    num_hosts: int
    local_size: int
    dense: DenseProfile
    sptt_refusal: str = ""  # why no SPTT candidate at all ('' when admitted)
    compress_refusal: str = ""  # why no compressing Tower Module ('' when admitted)
    embedding_feed: str = ""  # direct | hierarchical | '' (towers fed as whole embeddings)
    embedding_feed_refusal: str = ""  # why direct / hierarchical feed is not possible
    whole: bool = False  # the trial needed whole embeddings at a cat site
    gm: Any = field(default=None, compare=False, repr=False)
    tower_nodes: tuple = field(default=(), compare=False, repr=False)  # per tower: its lookup nodes
    chains: tuple = field(default=(), compare=False, repr=False)  # per tower: its lookups' cat/stack uses

    @property
    def flat_widths(self) -> list[float]:
        return [float(g.width) for g in self.detection.groups]

    @property
    def flat_ids(self) -> list[float]:
        return [float(len(g.lookups)) for g in self.detection.groups]


_MATMULS = {torch.bmm, torch.matmul, torch.mm, operator.matmul, "bmm", "matmul", "mm"}
_FREE = {operator.getitem, "view", "reshape", "unsqueeze", "squeeze", "flatten", "transpose", "permute", "size",
         "contiguous", "expand"}


def _numel(node: Any) -> int:
    shape = node.meta.get(SHAPE) if isinstance(node, fx.Node) else None
    return math.prod(shape) if isinstance(shape, (tuple, list)) and all(isinstance(d, int) for d in shape) else 0


def _dense_profile(gm: fx.GraphModule, det: Detection) -> DenseProfile:
    """Forward FLOPs per sample, operators and parameters of everything but the lookups, read off the graph.

    FLOPs: `nn.Linear` modules (2 x in x out per row) and matrix products (2 x output elements x the
    contracted size), from the recorded shapes; operators: every call node that is not a lookup or a
    view. Counting on the graph is instant where running a 1,000-feature model under an operator
    counter takes seconds; it misses elementwise work, which is small next to the GEMMs.
    """
    lookups = {lk.node for lk in det.lookups}
    flops, ops = 0.0, 0
    for n in gm.graph.nodes:
        if n.op not in ("call_module", "call_function", "call_method") or n.name in lookups or n.target in _FREE:
            continue
        ops += 1
        if n.op == "call_module":
            mod = gm.get_submodule(n.target)
            if isinstance(mod, torch.nn.Linear):
                flops += 2.0 * mod.in_features * _numel(n)
        elif n.target in _MATMULS and isinstance(n.args[0], fx.Node) and n.args[0].meta.get(SHAPE):
            flops += 2.0 * _numel(n) * n.args[0].meta[SHAPE][-1]
    tables = {id(p) for m in gm.modules()
              if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag)) or "Embedding" in type(m).__name__
              for p in m.parameters(recurse=True)}
    params = sum(p.numel() for p in gm.parameters() if id(p) not in tables)
    return DenseProfile(flops / max(1, det.batch_size), float(ops), float(params))


def _compress_refusal(det: Detection, nodes) -> str:
    for lookups in nodes:
        for n in lookups:
            if n.meta.get(SHAPE) is None or det.lookups[n.meta[LOOKUP]].kind == "ec":
                return (f"lookup {n.name} returns unpooled sequences (torchrec EmbeddingCollection): its tower "
                        "cannot be compressed")
    return ""


def _embedding_feed(gm: fx.GraphModule, ctx: PassContext, plan: TowerPlan, nodes) -> tuple[str, str, bool]:
    """(direct | hierarchical | '', why not, whole) from one plan-feed trial."""
    try:
        result = PlanFeed("dot", TRIAL_COMPRESSION, "hierarchical").call(gm, ctx)
    except TowerModuleError as exc:
        return "", exc.problem.split(": ", 1)[-1], False
    feed = next(a for a in result.analyses if type(a).__name__ == "FeedPlan")
    kind = "hierarchical" if feed.rebuilt else "direct"
    try:
        cut = [direct_tower_feed(d.index, ns, TRIAL_COMPRESSION, False) for d, ns in zip(plan.details, nodes)]
        whole = [tf.width_out for tf in cut] != [tf.width_out for tf in feed.towers]
    except FeedNotApplicable:
        whole = True
    reason = "" if kind == "direct" else "the interaction is not shape-polymorphic in the number of embeddings"
    return kind, reason, whole


def gather_facts(gm: fx.GraphModule, ctx: PassContext) -> ModelFacts:
    """ModelFacts of the planned (not rewritten) graph; see the module docstring."""
    det, plan = ctx.get(Detection), ctx.get(TowerPlan)
    by_name = {n.name: n for n in gm.graph.nodes}
    nodes = tuple(tuple(by_name[det.lookups[i].node] for i in d.lookups) for d in plan.details)
    topo = ctx.topology
    dense = _dense_profile(gm, det)
    facts = dict(plan=plan, detection=det, num_hosts=topo.num_hosts, local_size=topo.local_size, dense=dense,
                 gm=gm, tower_nodes=nodes)
    if topo.num_hosts == 1:
        return ModelFacts(**facts, sptt_refusal="the topology has one host: towers would not cross hosts "
                                                "(flat is the only strategy)")
    refusal = _compress_refusal(det, nodes)
    if refusal:
        return ModelFacts(**facts, compress_refusal=refusal)
    kind, why, whole = _embedding_feed(gm, ctx, plan, nodes)
    chains = tuple([element_chains(n) for n in ns] for ns in nodes) if kind else ()
    return ModelFacts(**facts, embedding_feed=kind, embedding_feed_refusal=why, whole=whole, chains=chains)


def tower_feeds(facts: ModelFacts, compression: float, feed: str) -> list[TowerFeed]:
    """Each tower's feed at `compression` (structural only); FeedNotApplicable when it does not fit."""
    pairs = list(zip(facts.plan.details, facts.tower_nodes))
    if feed == "decoder":
        return [decoder_tower_feed(facts.gm, d.index, list(ns), compression) for d, ns in pairs]
    towers = [direct_tower_feed(d.index, list(ns), compression, facts.whole, chains)
              for (d, ns), chains in zip(pairs, facts.chains or [None] * len(pairs))]
    total_in = sum(d.width_in for d in facts.plan.details)
    total_out = sum(tf.width_out for tf in towers)
    if total_out > 2 * -(-total_in // compression):
        raise FeedNotApplicable(f"it would leave {total_out} of {total_in} elements per sample uncompressed")
    return towers
