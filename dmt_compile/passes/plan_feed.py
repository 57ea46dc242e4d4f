"""plan-feed: decide, before any graph change, how each tower's Tower Module output is fed.

Analysis only. With `tower_module="identity"` every tower is an identity tower. A compressing
Tower Module (ratio c) compresses the tower's F_t embeddings into ⌈F_t/c⌉ embeddings of the same
shape that feed the interaction's cat/stack directly: `direct` when the model is shape-polymorphic
in the number of embeddings, `hierarchical` when it is once the layers whose width depends on
that number are rebuilt (DLRM's top MLP and triangle indices, DCN's cross layers and deep
input); otherwise a per-tower `decoder` restores the original tensors (see `ir.feed`).

`feed="auto"` (the default) takes the first that applies: direct, hierarchical (for Tower Modules
that compute interactions inside the tower: dot, cross, wukong; a linear TM would hand the global
interaction linear codes only and lose every feature pair within a tower), decoder. The
check is structural first (the tower's lookups reach one cat/stack site through views, with one
element shape), then a trial run on a scratch copy of the graph with each tower's compressed
embeddings at the site (`feed_trial.run_trial`): the model must run, with the rebuilt layers, and
return the same output structure and shapes, and the towers must really compress. Only failures
of the model's own code in the trial are read as "not possible"; any other exception is a bug and
propagates. `feed="direct" | "hierarchical" | "decoder"` forces one (a typed error when it cannot
apply). The refined `TowerPlan` (width out, feed per tower, rebuilt layers) is final before
`sptt-rewrite` runs; `insert-tower-modules` applies it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
import torch
import torch.fx as fx

from dmt_compile.errors import TowerModuleError
from dmt_compile.ir.detection import Detection
from dmt_compile.ir.feed import FEEDS, REBUILD_INITS, FeedPlan, SiteUse, TowerFeed
from dmt_compile.ir.graph import is_view_step
from dmt_compile.ir.meta import DTYPE, LOOKUP, SHAPE
from dmt_compile.ir.plan import TowerPlan
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.passes.feed_trial import FeedNotApplicable, run_trial
from dmt_compile.passes.option_field import option
from dmt_compile.tower_modules import TOWER_MODULES, clamp_note, compressed_count, compressed_width, interacts

__all__ = ["PlanFeed", "FeedNotApplicable", "direct_tower_feed", "decoder_tower_feed", "element_chains",
           "MAX_COMPRESSION", "DEFAULT_COMPRESSION"]

MAX_COMPRESSION = 16.0  # the paper's TMs compress up to 16x
DEFAULT_COMPRESSION = 4.0  # a compressing Tower Module's ratio when none is given


def _width(node: fx.Node) -> int:
    return math.prod(node.meta[SHAPE][1:])


def _element_chains(node: fx.Node) -> list[tuple[fx.Node, fx.Node]] | None:
    """(site, list element) for each use of `node`: a view chain ending in a cat/stack list; else None."""
    uses = []
    for user in node.users:
        cur, prev = user, node
        while is_view_step(cur) and len(cur.users) == 1:
            prev, cur = cur, next(iter(cur.users))
        items = cur.args[0] if cur.op == "call_function" and cur.target in (torch.cat, torch.stack) else None
        if not isinstance(items, (list, tuple)) or prev not in items:
            return None
        uses.append((cur, prev))
    return uses or None


def _site_layout(entries: dict[fx.Node, list[fx.Node]]) -> tuple[tuple[int, ...], int, bool, int]:
    """(element shape, embeddings, stacked?, dim) shared by every site the tower's compressed lookups enter."""
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
        layouts.add((shape, len(elements), stacked, dim))
    if len(layouts) != 1:
        raise FeedNotApplicable("tower embeddings enter several interaction sites differently")
    return layouts.pop()


def _direct_tower(t: int, lookups: list[fx.Node], c: float, whole: bool, chains: list | None = None) -> TowerFeed:
    """The tower's compressed embeddings for its interaction site.

    A stack gets k ≈ F_t/c embeddings of the element shape (the whole number whose ratio is
    closest to c). A cat gets one piece along its dim: ⌈F_t·w/c⌉ elements (`whole=False`,
    exactly c), or k whole embeddings (`whole=True`, for models that view the cat as embeddings).
    """
    chains = [_element_chains(n) for n in lookups] if chains is None else chains  # they do not depend on c
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
    elem_shape, count, stacked, dim = _site_layout(entries)
    w = 1 if stacked else elem_shape[dim - 1]
    if stacked or whole or w == 1:  # whole embeddings ([B, 1, D] elements are whole already)
        new_count = compressed_count(count, c)
        slots, note = new_count * w, clamp_note(count, c, t, "number of embeddings")
    else:
        new_count, slots = 1, compressed_width(count * w, c)
        note = clamp_note(count * w, c, t, "embedding width")
    if slots >= count * w:  # one embedding cannot shrink as whole embeddings; a decoder can still compress it
        raise FeedNotApplicable(
            f"tower {t}'s {count} embedding(s) do not shrink as whole embeddings at compression {c:g}"
            if count > 1 else f"tower {t} has a single embedding, which whole embeddings cannot compress")
    piece = list(elem_shape)
    if not stacked:
        piece[dim - 1] = slots
    core = (new_count if stacked else 1) * math.prod(piece)
    # whole embeddings: of the element's shape (stack), of its last dim when the cat runs along another
    # axis ([B, 1, D] pieces), of the element's width for a cat of flat embeddings (`whole`)
    emb = math.prod(elem_shape) if stacked and len(elem_shape) == 1 else \
        elem_shape[-1] if not stacked and len(elem_shape) == 2 and dim == 1 else \
        elem_shape[0] if not stacked and whole and len(elem_shape) == 1 else 0
    passed = sum(_width(n) for n, s in zip(lookups, compress) if not s)
    return TowerFeed(t, "direct", compress, tuple(_width(n) for n, s in zip(lookups, compress) if s), core,
                     core + passed, new_count if stacked else 1, tuple(piece), tuple(uses), emb, note=note)


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
    core = compressed_width(sum(widths), c)
    return TowerFeed(t, "decoder", (True,) * len(lookups), widths, core, core, shapes=shapes,
                     keyed=tuple(_keyed_layout(gm, n) for n in lookups),
                     note=clamp_note(sum(widths), c, t, "looked-up width"))


# the structural halves of the decision, for callers that derive a tower's widths at many c without a trial
# (strategy="auto": the trial runs once, the widths at every c come from these)
direct_tower_feed = _direct_tower
decoder_tower_feed = _decoder_tower
element_chains = _element_chains

_FIX_DIRECT = ('use feed="hierarchical" (rebuilds the layers whose width depends on the number of embeddings) '
               'or feed="decoder"')


@dataclass(frozen=True)
class PlanFeed(Pass):
    name = "plan-feed"
    needs = (Detection, TowerPlan)
    produces = (FeedPlan, TowerPlan)

    option_error = TowerModuleError

    tower_module: str = field(default="identity", metadata=option(
        "the Tower Module of every tower: identity (exact: the towers only regroup the lookups) or a "
        "compressing one: linear, dot, cross, wukong", choices=TOWER_MODULES, searched=True))
    compression: float | None = field(default=None, metadata=option(
        "compression ratio c of a compressing Tower Module", minimum=1.0, maximum=MAX_COMPRESSION,
        default_text=f"{DEFAULT_COMPRESSION:g} for a compressing Tower Module, 1 for identity",
        example=DEFAULT_COMPRESSION, searched=True))
    feed: str = field(default="auto", metadata=option(
        "how compressed towers reach the interaction: direct (the interaction consumes the compressed "
        "embeddings), hierarchical (the layers whose width depends on the number of embeddings are rebuilt), "
        "decoder (restores the original tensors) or auto (direct, else hierarchical for interacting Tower "
        "Modules, else decoder)", choices=FEEDS, searched=True))
    rebuild_init: str = field(default="copy", metadata=option(
        "hierarchical feed: how rebuilt layers start: copy (keep the weights that still exist) or default "
        "(the layer's own initialisation)", choices=REBUILD_INITS))

    def check_fields(self) -> None:
        """The declared checks, and: the identity Tower Module does not compress."""
        super().check_fields()
        if self.tower_module == "identity" and self.compression not in (None, 1, 1.0):
            raise self.option_refused("compression", f"the identity tower module cannot compress "
                                      f"(compression={self.compression})",
                                      'use tower_module="linear" (or another compressing module) with compression > 1')

    @property
    def ratio(self) -> float:
        """The compression in use: `compression`, or its default (1 for identity, 4 otherwise)."""
        if self.compression is not None:
            return float(self.compression)
        return 1.0 if self.tower_module == "identity" else DEFAULT_COMPRESSION

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
        c = self.ratio
        towers, rebuilt, notes = self._decide(gm, ctx, plan, nodes, c)
        if towers is None:
            towers = [_decoder_tower(gm, d.index, lookups, c) for d, lookups in zip(plan.details, nodes)]
        notes += [tf.note for tf in towers if tf.note]
        if rebuilt:
            notes.append(f"hierarchical feed: the interaction consumes the compressed tower outputs; {len(rebuilt)} "
                         "layer(s) whose width depends on the number of embeddings rebuilt (see 'rebuilt' below)")
        return self._result(gm, plan, FeedPlan(self.tower_module, c, tuple(towers), tuple(notes), rebuilt))

    def _decide(self, gm, ctx, plan: TowerPlan, nodes, c: float):
        """(direct/hierarchical towers or None for decoders, layers to rebuild, notes) as `feed` asks."""
        if self.feed == "decoder":
            return None, (), []
        try:
            towers, rebuilt = self._direct(gm, ctx, plan, nodes, c, rebuild=self.feed != "direct")
        except FeedNotApplicable as exc:
            if self.feed == "direct":
                raise TowerModuleError(f"direct feed of compressed towers is not possible: {exc}", _FIX_DIRECT) from None
            if self.feed == "hierarchical":
                raise TowerModuleError(f"hierarchical feed of compressed towers is not possible: {exc}",
                                       'use feed="decoder" (or "auto") for this model') from None
            return None, (), [f"compressed towers cannot feed the interaction directly: {exc}; using per-tower "
                              "decoders (they rebuild the original widths)"]
        if rebuilt and self.feed == "auto" and not interacts(self.tower_module):
            return None, (), [
                f"hierarchical feed is possible ({len(rebuilt)} layer(s) to rebuild) but not chosen by feed='auto' "
                f"for the {self.tower_module} Tower Module, which computes no interaction inside the tower: the "
                "global interaction would lose every feature pair within a tower; using per-tower decoders "
                "(feed='hierarchical' forces it)"]
        return towers, rebuilt, []

    def _direct(self, gm, ctx, plan: TowerPlan, nodes, c: float, rebuild: bool):
        """(towers fed directly, layers to rebuild); FeedNotApplicable when compressed embeddings do not fit.

        A cat site first gets exactly c-fold fewer elements, then (if the model needs whole
        embeddings, e.g. it views the cat as [B, n, d]) ⌈F_t/c⌉ whole embeddings."""
        reasons: list[str] = []
        tried: list[list[TowerFeed]] = []
        for whole in (False, True):
            try:
                towers = [_direct_tower(d.index, lookups, c, whole) for d, lookups in zip(plan.details, nodes)]
                if towers in tried:
                    continue
                tried.append(towers)
                return self._trial(gm, ctx, plan, nodes, c, towers, rebuild)
            except FeedNotApplicable as exc:
                if str(exc) not in reasons:
                    reasons.append(str(exc) if not whole else f"with whole embeddings: {exc}")
        raise FeedNotApplicable("; ".join(reasons))

    def _trial(self, gm, ctx, plan: TowerPlan, nodes, c: float, towers: list[TowerFeed], rebuild: bool):
        total_in = sum(d.width_in for d in plan.details)
        total_out = sum(tf.width_out for tf in towers)
        if total_out > 2 * math.ceil(total_in / c):
            raise FeedNotApplicable(f"it would leave {total_out} of {total_in} elements per sample uncompressed "
                                    "(embeddings that also feed other layers pass through)")
        rebuilt = run_trial(gm, ctx.flat_inputs, ctx.reference_output, towers, nodes, rebuild, self.rebuild_init)
        if rebuilt:
            towers = [replace(tf, feed="hierarchical") for tf in towers]
        return towers, rebuilt

    @staticmethod
    def _result(gm: fx.GraphModule, plan: TowerPlan, feed: FeedPlan) -> PassResult:
        details = tuple(replace(d, width_out=tf.width_out, feed=tf.feed) for d, tf in zip(plan.details, feed.towers))
        refined = plan.with_towers(details, tower_module=feed.tower_module, compression=feed.compression,
                                   notes=plan.notes + feed.notes, rebuilt=feed.rebuilt)
        return PassResult(gm, False, (feed, refined))
