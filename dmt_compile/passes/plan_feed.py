"""plan-feed: decide, before any graph change, how each tower's Tower Module output is fed.

Analysis only. With `tower_module="identity"` every tower is an identity tower. A compressing
Tower Module (ratio c) is fed `direct` when the interaction is shape-polymorphic in the number
of embeddings, else through a per-tower `decoder` (see `ir.feed`). `feed="auto"` checks direct
feed structurally (the tower's lookups reach one cat/stack site through views, with one element
shape), then by a trial shape propagation on a scratch copy of the graph in which each tower's
compressed embeddings replace its lookups at the site: the model must run and return the same
output structure and shapes, and the towers must really compress. Only failures of the model's
own code in the trial are read as "not polymorphic"; any other exception is a bug and propagates.
The refined `TowerPlan` (width out, feed per tower) is final before `sptt-rewrite` runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.fx as fx

from dmt_compile.errors import TowerModuleError
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.feed import FEEDS, FeedPlan, SiteUse, TowerFeed
from dmt_compile.ir.graph import is_impure, VIEW_METHODS, copy_graph
from dmt_compile.ir.meta import DTYPE, LOOKUP, SHAPE
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.ir.shapes import tree_shapes_equal
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.tower_modules import TOWER_MODULES, compressed_width

__all__ = ["PlanFeed", "FeedNotApplicable"]


class FeedNotApplicable(Exception):
    """Direct feed does not fit this model (the message says why); decoders are used instead."""


def _width(node: fx.Node) -> int:
    return math.prod(node.meta[SHAPE][1:])


def _element_chains(node: fx.Node) -> list[tuple[fx.Node, fx.Node]] | None:
    """(site, list element) for each use of `node`: a view chain ending in a cat/stack list; else None."""
    uses = []
    for user in node.users:
        cur, prev = user, node
        while cur.op == "call_method" and cur.target in VIEW_METHODS and len(cur.users) == 1:
            prev, cur = cur, next(iter(cur.users))
        items = cur.args[0] if cur.op == "call_function" and cur.target in (torch.cat, torch.stack) else None
        if not isinstance(items, (list, tuple)) or prev not in items:
            return None
        uses.append((cur, prev))
    return uses or None


def _site_layout(entries: dict[fx.Node, list[fx.Node]]) -> tuple[tuple[int, ...], int, bool, int]:
    """(element shape, slots, stacked?, dim) shared by every site the tower's compressed lookups enter."""
    layouts = set()
    for site, elements in entries.items():
        stacked = site.target is torch.stack
        dim = site.args[1] if len(site.args) > 1 else site.kwargs.get("dim", 0)
        shapes = {tuple(e.meta[SHAPE][1:]) for e in elements}
        if len(shapes) != 1 or dim in (0, None):
            raise FeedNotApplicable("tower embeddings have different shapes or are combined along the batch")
        shape = shapes.pop()
        ndim = len(shape) + (1 if stacked else 0)
        dim = dim % (ndim + 1) if dim < 0 else dim
        layouts.add((shape, len(elements) if stacked else len(elements) * shape[dim - 1], stacked, dim))
    if len(layouts) != 1:
        raise FeedNotApplicable("tower embeddings enter several interaction sites differently")
    return layouts.pop()


def _direct_tower(t: int, lookups: list[fx.Node], c: float) -> TowerFeed:
    chains = [_element_chains(n) for n in lookups]
    if not any(chains):
        raise FeedNotApplicable(f"tower {t}'s embeddings do not enter a cat/stack")
    # the interaction site: the cat/stack receiving most of the tower's looked-up width; lookups
    # entering only that site are compressed, all others pass through
    weight: dict[fx.Node, int] = {}
    for n, chain in zip(lookups, chains):
        for site, _ in chain or ():
            weight[site] = weight.get(site, 0) + _width(n)
    order = {s: i for i, s in enumerate(next(iter(weight)).graph.nodes)}
    main = max(weight, key=lambda s: (weight[s], -order[s]))
    compress = tuple(ch is not None and all(site is main for site, _ in ch) for ch in chains)
    entries: dict[fx.Node, list[fx.Node]] = {}
    uses = []
    for k, (n, chain) in enumerate(zip(lookups, chains)):
        for site, element in chain if compress[k] else ():
            entries.setdefault(site, []).append(element)
            uses.append(SiteUse(site.name, None if element is n else element.name, k))
    elem_shape, slots, stacked, dim = _site_layout(entries)
    try:
        new_slots = compressed_width(slots, c, f"tower {t}'s number of embeddings")
    except TowerModuleError as exc:
        raise FeedNotApplicable(exc.problem) from None
    piece = list(elem_shape)
    if not stacked:
        piece[dim - 1] = new_slots
    core = (new_slots if stacked else 1) * math.prod(piece)
    passed = sum(_width(n) for n, s in zip(lookups, compress) if not s)
    return TowerFeed(t, "direct", compress, tuple(_width(n) for n, s in zip(lookups, compress) if s), core,
                     core + passed, new_slots if stacked else 1, tuple(piece), tuple(uses))


def _keyed_layout(gm: fx.GraphModule, node: fx.Node):
    """(keys, length_per_key) when `node` is a torchrec collection lookup returning a KeyedTensor."""
    if node.meta.get(DTYPE) != "KeyedTensor" or node.op != "call_module":
        return None
    configs = gm.get_submodule(node.target).embedding_bag_configs()
    return (tuple(f for c in configs for f in c.feature_names),
            tuple(c.embedding_dim for c in configs for _ in c.feature_names))


def _decoder_tower(gm: fx.GraphModule, t: int, lookups: list[fx.Node], c: float) -> TowerFeed:
    shapes = tuple(tuple(n.meta[SHAPE][1:]) for n in lookups)
    widths = tuple(math.prod(s) for s in shapes)
    core = compressed_width(sum(widths), c, f"tower {t}'s looked-up width")
    return TowerFeed(t, "decoder", (True,) * len(lookups), widths, core, core, shapes=shapes,
                     keyed=tuple(_keyed_layout(gm, n) for n in lookups))


def _rows_of_zeros(ref: Any, shape: tuple[int, ...]) -> torch.Tensor:
    """Trial stand-in for a compressed embedding: zeros of per-sample `shape` for `ref`'s batch."""
    return ref.new_zeros((ref.shape[0], *shape))


class _Trial(fx.Interpreter):
    def run_node(self, n: fx.Node) -> Any:
        try:
            return super().run_node(n)
        except Exception as exc:  # the model's own code, run on fewer embeddings
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            raise FeedNotApplicable(f"the model's {n.name} fails with fewer embeddings ({text})") from None


def _trial(gm: fx.GraphModule, ctx: PassContext, towers: list[TowerFeed], nodes: list[list[fx.Node]]) -> None:
    """Run the model with every tower's compressed embeddings spliced into its sites (scratch copy)."""
    graph, env = copy_graph(gm.graph)
    by_name = {n.name: env[n] for n in gm.graph.nodes if n in env}
    for tf, lookups in zip(towers, nodes):
        sites: dict[str, list[fx.Node]] = {}
        for use in tf.uses:
            sites.setdefault(use.site, []).append(by_name[use.element or lookups[use.lookup].name])
        for site_name, elements in sites.items():
            site = by_name[site_name]
            with graph.inserting_before(site):
                fake = graph.call_function(_rows_of_zeros, (env[lookups[0]], tf.piece_shape))
            items = list(site.args[0])
            first = min(items.index(e) for e in elements)
            kept = [x for x in items if x not in elements]
            site.args = (kept[:first] + [fake] * tf.pieces + kept[first:], *site.args[1:])
    trial = fx.GraphModule(gm, graph)
    trial.graph.eliminate_dead_code(is_impure_node=is_impure)
    trial.recompile()
    modes = {name: m.training for name, m in trial.named_modules()}
    trial.eval()
    try:
        with torch.no_grad():
            out = _Trial(trial).run(*ctx.flat_inputs)
    finally:
        for name, m in trial.named_modules():
            m.training = modes[name]
    if not tree_shapes_equal(out, ctx.reference_output):
        raise FeedNotApplicable("the interaction is not shape-polymorphic (the output shapes change)")


@dataclass(frozen=True)
class PlanFeed(Pass):
    name = "plan-feed"
    needs = (Detection, TowerPlan)
    produces = (FeedPlan, TowerPlan)

    tower_module: str = "identity"  # identity | linear | dot | cross | wukong
    compression: float = 1.0  # ratio c of a compressing Tower Module
    feed: str = "auto"  # auto | direct | decoder

    def requires(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        if self.tower_module not in TOWER_MODULES:
            raise TowerModuleError(f"unknown tower_module {self.tower_module!r}",
                                   "choose one of: " + ", ".join(sorted(TOWER_MODULES)))
        if self.feed not in FEEDS:
            raise TowerModuleError(f"unknown feed {self.feed!r}", "choose one of: " + ", ".join(FEEDS))

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        det, plan = ctx.get(Detection), ctx.get(TowerPlan)
        by_name = {n.name: n for n in gm.graph.nodes}
        nodes = [[by_name[det.lookups[i].node] for i in d.lookups] for d in plan.details]
        if self.tower_module == "identity":
            towers = [TowerFeed(d.index, "identity", (False,) * len(d.lookups), width_out=d.width_in)
                      for d in plan.details]
            return self._result(gm, plan, FeedPlan("identity", 1.0, tuple(towers)))
        for d, lookups in zip(plan.details, nodes):
            for n in lookups:
                if n.meta.get(SHAPE) is None or det.lookups[n.meta[LOOKUP]].kind == "ec":
                    raise TowerModuleError(
                        f"lookup {n.name} returns unpooled sequences (torchrec EmbeddingCollection); tower {d.index} "
                        "holding it cannot be compressed", 'use tower_module="identity" for this model')
        c, notes, towers = float(self.compression), [], None
        if self.feed in ("auto", "direct"):
            try:
                towers = self._direct(gm, ctx, plan, nodes, c)
            except FeedNotApplicable as exc:
                if self.feed == "direct":
                    raise TowerModuleError(f"direct feed of compressed towers is not possible: {exc}",
                                           'use feed="decoder" (or "auto") for this model') from None
                notes.append(f"direct feed not possible ({exc}); using per-tower decoders")
        if towers is None:
            towers = [_decoder_tower(gm, d.index, lookups, c) for d, lookups in zip(plan.details, nodes)]
        return self._result(gm, plan, FeedPlan(self.tower_module, c, tuple(towers), tuple(notes)))

    def _direct(self, gm, ctx, plan: TowerPlan, nodes, c: float) -> list[TowerFeed]:
        towers = [_direct_tower(d.index, lookups, c) for d, lookups in zip(plan.details, nodes)]
        total_in = sum(d.width_in for d in plan.details)
        total_out = sum(tf.width_out for tf in towers)
        if total_out > 2 * math.ceil(total_in / c):
            raise FeedNotApplicable(f"it would leave {total_out} of {total_in} elements per sample uncompressed "
                                    "(embeddings that also feed other layers pass through)")
        _trial(gm, ctx, towers, nodes)
        return towers

    @staticmethod
    def _result(gm: fx.GraphModule, plan: TowerPlan, feed: FeedPlan) -> PassResult:
        details = tuple(replace(d, width_out=tf.width_out, feed=tf.feed) for d, tf in zip(plan.details, feed.towers))
        refined = plan.with_towers(details, tower_module=feed.tower_module, compression=feed.compression,
                                   notes=plan.notes + feed.notes)
        return PassResult(gm, False, (feed, refined))

