"""tower-modules: replace each tower's identity TM by the chosen Tower Module.

With `tower_module="identity"` nothing changes. A compressing TM (compression c) is fed to the
interaction in one of two ways, recorded in the plan as each tower's `feed`:

* `direct` — the interaction is shape-polymorphic in the number of embeddings: the lookups that
  only enter `torch.stack`/`torch.cat` sites are compressed into ⌈slots/c⌉ embeddings of the same
  shape and spliced into those lists; other lookups (e.g. dim-1 "wide" tables) pass through.
* `decoder` — a per-tower decoder after the exchange restores every original tensor.

`feed="auto"` tries `direct` on a copy of the graph and keeps it only if the copy runs on the
example inputs and returns the original output structure and shapes (trial shape propagation);
otherwise it uses `decoder`.
"""
from __future__ import annotations

import math
import operator
from dataclasses import replace

import torch
import torch.fx as fx

from dmt_compile.ir.boundary import outputs_exchange
from dmt_compile.errors import TowerModuleError
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.ir.graph import call_module, tag
from dmt_compile.ir.shapes import record_shapes, tree_shapes_equal
from dmt_compile.tower_modules import (
    CompressingTowerModule, DirectFeed, TowerDecoder, compressed_width, make_core,
)

__all__ = ["TowerModules", "FEEDS"]

FEEDS = ("auto", "direct", "decoder")
_VIEWS = {"unsqueeze", "view", "reshape", "squeeze", "flatten", "contiguous", "float"}


def _tower_nodes(gm: fx.GraphModule, t: int) -> dict[str, fx.Node]:
    """The tower's Tower Module node and its outputs_exchange node."""
    tm = next(n for n in gm.graph.nodes if n.op == "call_module" and n.meta.get("dmt.tower") == t
              and n.meta.get("dmt.role") == "tower_module")
    out = next(n for n in gm.graph.nodes if n.target is outputs_exchange and n.args[0] == t)
    return {"tm": tm, "out": out}


def _parts(out: fx.Node) -> list[fx.Node]:
    parts = sorted((u for u in out.users if u.target is operator.getitem), key=lambda u: u.args[1])
    return parts


def _element_chains(part: fx.Node):
    """(site, list index) for each use of `part` that is a view chain ending in a cat/stack list, or None."""
    uses = []
    for user in part.users:
        node, prev = user, part
        while node.op == "call_method" and node.target in _VIEWS and len(node.users) == 1:
            prev, node = node, next(iter(node.users))
        if node.op == "call_function" and node.target in (torch.cat, torch.stack):
            items = node.args[0] if node.args else None
            if isinstance(items, (list, tuple)) and prev in items:
                uses.append((node, items.index(prev), prev))
                continue
        return None
    return uses or None


class TowerModules(Pass):
    name = "tower-modules"

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        opts = ctx.options
        name = opts.get("tower_module", "identity")
        c = float(opts.get("compression", 1.0))
        plan = ctx.plan
        if name == "identity":
            details = tuple(replace(d, width_out=d.width_in, feed="identity") for d in plan.details)
            ctx.plan = plan.with_towers(details, tower_module="identity", compression=1.0)
            return PassResult(gm, False)
        for n in gm.graph.nodes:
            if n.meta.get("dmt.role") == "lookup" and n.meta.get("dmt.shape") is None:
                raise TowerModuleError(
                    f"lookup {n.name} returns unpooled sequences (torchrec EmbeddingCollection); a tower holding it "
                    "cannot be compressed", 'use tower_module="identity" for this model')
        feed = opts.get("feed", "auto")
        if feed not in FEEDS:
            raise TowerModuleError(f"unknown feed {feed!r}", "choose one of: " + ", ".join(FEEDS))
        notes = list(plan.notes)
        if feed in ("auto", "direct"):
            trial = fx.GraphModule(gm, _copy_graph(gm.graph))
            try:
                widths = self._direct(trial, ctx, name, c)
                trial.recompile()
                out = record_shapes(trial, ctx.flat_inputs)  # the trial shape propagation
                if not tree_shapes_equal(out, ctx.reference_output):
                    raise TowerModuleError("the interaction is not shape-polymorphic (output shapes change)", "")
                total_in = sum(d.width_in for d in plan.details)
                total_out = sum(widths.values())
                if total_out > 2 * math.ceil(total_in / c):
                    raise TowerModuleError(
                        f"it would leave {total_out} of {total_in} elements per sample uncompressed (embeddings "
                        "that also feed other layers pass through)", "")
                gm, chosen = trial, "direct"
            except Exception as exc:  # noqa: BLE001 - the reason is recorded in the plan
                if feed == "direct":
                    raise TowerModuleError(
                        f"direct feed of compressed towers failed: {type(exc).__name__}: {exc}",
                        'use feed="decoder" (or "auto") for this model',
                    ) from exc
                notes.append(f"direct feed not possible ({_first_line(exc)}); using per-tower decoders")
                chosen = None
        else:
            chosen = None
        if chosen is None:
            widths = self._decoder(gm, ctx, name, c)
            chosen = "decoder"
        details = tuple(replace(d, width_out=widths[d.index], feed=chosen) for d in plan.details)
        ctx.plan = plan.with_towers(details, tower_module=name, compression=c, notes=tuple(notes))
        return PassResult(gm, True)

    # -- decoder: compress everything, restore every original tensor after the exchange ---------
    def _decoder(self, gm: fx.GraphModule, ctx: PassContext, name: str, c: float) -> dict[int, int]:
        graph, widths = gm.graph, {}
        for d in ctx.plan.details:
            nodes = _tower_nodes(gm, d.index)
            tm, out = nodes["tm"], nodes["out"]
            shapes = [tuple(a.meta["dmt.shape"][1:]) for a in tm.args]
            keyed = [_keyed_layout(gm, a) for a in tm.args]
            in_widths = [math.prod(s) for s in shapes]
            o = compressed_width(sum(in_widths), c, f"tower {d.index}'s looked-up width")
            core = make_core(name, in_widths, o)
            gm.get_submodule("dmt").add_module(f"tower{d.index}_tm", CompressingTowerModule(core, [True] * len(shapes)))
            gm.get_submodule("dmt").add_module(f"tower{d.index}_decoder", TowerDecoder(o, shapes, keyed))
            parts = _parts(out)
            payload = list(out.args[1:])
            with graph.inserting_after(tm):
                y = tag(graph.call_function(operator.getitem, (tm, 0), name=f"tower{d.index}_payload_c"),
                        self.name, tower=d.index, role="tower_module")
            out.args = (d.index, y)
            for p in payload:
                graph.erase_node(p)
            with graph.inserting_after(out):
                y_back = tag(graph.call_function(operator.getitem, (out, 0), name=f"tower{d.index}_out_c"),
                             self.name, tower=d.index, role="reassemble")
            with graph.inserting_after(y_back):
                dec = tag(call_module(graph, f"dmt.tower{d.index}_decoder", (y_back,), name=f"tower{d.index}_decoder"),
                          self.name, tower=d.index, role="decoder")
            for k, part in enumerate(parts):
                part.args = (dec, k)
                tag(part, self.name, tower=d.index, role="decoder")
            widths[d.index] = o
        gm.graph.lint()
        return widths

    # -- direct feed: compress the stacked embeddings, splice them into the interaction lists ----
    def _direct(self, gm: fx.GraphModule, ctx: PassContext, name: str, c: float) -> dict[int, int]:
        graph, widths = gm.graph, {}
        for d in ctx.plan.details:
            t = d.index
            nodes = _tower_nodes(gm, t)
            tm, out = nodes["tm"], nodes["out"]
            parts = _parts(out)
            chains = [_element_chains(p) for p in parts]
            if not any(chains):
                raise TowerModuleError(f"tower {t}'s embeddings do not enter a cat/stack", "")
            # the interaction site: the cat/stack receiving most of the tower's looked-up width;
            # lookups entering only that site are compressed, all others pass through
            weight: dict[fx.Node, int] = {}
            for p, ch in zip(parts, chains):
                for site, _, _ in ch or ():
                    weight[site] = weight.get(site, 0) + math.prod(p.meta["dmt.shape"][1:])
            main = max(weight, key=lambda s: (weight[s], -list(graph.nodes).index(s)))
            squeezable = [ch is not None and all(site is main for site, _, _ in ch) for ch in chains]
            sites: dict[fx.Node, list] = {}
            for k, ch in enumerate(chains):
                if squeezable[k]:
                    for site, pos, elem in ch:
                        sites.setdefault(site, []).append((pos, elem, k))
            site = _single_site_layout(sites, squeezable)
            elem_shape, slots, stacked, dim = site
            new_slots = compressed_width(slots, c, f"tower {t}'s number of embeddings")
            in_widths = [math.prod(a.meta["dmt.shape"][1:]) for a, s in zip(tm.args, squeezable) if s]
            piece = list(elem_shape)
            if not stacked:
                piece[dim - 1] = new_slots
            o = (new_slots if stacked else 1) * math.prod(piece)
            core = make_core(name, in_widths, o)
            gm.get_submodule("dmt").add_module(f"tower{t}_tm", CompressingTowerModule(core, squeezable))
            pieces = new_slots if stacked else 1
            gm.get_submodule("dmt").add_module(f"tower{t}_feed", DirectFeed(pieces, piece))
            old_payload = list(out.args[1:])
            with graph.inserting_before(out):
                new_payload = [
                    tag(graph.call_function(operator.getitem, (tm, i), name=f"tower{t}_payload_c{i}"),
                        self.name, tower=t, role="tower_module")
                    for i in range(1 + squeezable.count(False))
                ]
            out.args = (t, *new_payload)
            for p in old_payload:
                graph.erase_node(p)
            with graph.inserting_after(out):
                y_back = tag(graph.call_function(operator.getitem, (out, 0), name=f"tower{t}_out_c"),
                             self.name, tower=t, role="reassemble")
            with graph.inserting_after(y_back):
                feed = tag(call_module(graph, f"dmt.tower{t}_feed", (y_back,), name=f"tower{t}_feed"),
                           self.name, tower=t, role="decoder")
            with graph.inserting_after(feed):
                fed = [tag(graph.call_function(operator.getitem, (feed, i), name=f"tower{t}_emb_{i}"),
                           self.name, tower=t, role="decoder") for i in range(pieces)]
            for s, entries in sites.items():
                items = list(s.args[0])
                first = min(pos for pos, _, _ in entries)
                drop = {pos for pos, _, _ in entries}
                new_items = []
                for i, item in enumerate(items):
                    if i == first:
                        new_items.extend(fed)
                    if i not in drop:
                        new_items.append(item)
                s.args = (new_items, *s.args[1:])
            keep = [p for p, s in zip(parts, squeezable) if not s]
            for i, p in enumerate(keep):
                p.args = (out, 1 + i)
            for p, s in zip(parts, squeezable):
                if s:
                    _erase_chain(graph, p)
            widths[t] = o + sum(math.prod(p.meta["dmt.shape"][1:]) for p in keep)
        graph.eliminate_dead_code()
        graph.lint()
        return widths


def _keyed_layout(gm: fx.GraphModule, node: fx.Node):
    """(keys, length_per_key) when `node` is a torchrec collection lookup returning a KeyedTensor."""
    if node.meta.get("dmt.dtype") != "KeyedTensor" or node.op != "call_module":
        return None
    configs = gm.get_submodule(node.target).embedding_bag_configs()
    keys = tuple(f for c in configs for f in c.feature_names)
    lengths = tuple(c.embedding_dim for c in configs for _ in c.feature_names)
    return keys, lengths


def _single_site_layout(sites: dict, squeezable) -> tuple:
    """(element shape, slots, stacked?, dim) shared by every site the tower's embeddings enter."""
    layouts = set()
    for site, entries in sites.items():
        stacked = site.target is torch.stack
        dim = site.args[1] if len(site.args) > 1 else site.kwargs.get("dim", 0)
        shapes = {tuple(e.meta["dmt.shape"][1:]) for _, e, _ in entries}
        if len(shapes) != 1 or dim in (0, None):
            raise TowerModuleError("tower embeddings have different shapes or are combined along the batch", "")
        shape = shapes.pop()
        ndim = len(shape) + (1 if stacked else 0)
        dim = dim % (ndim + 1) if dim < 0 else dim
        slots = len(entries) if stacked else len(entries) * shape[dim - 1]
        layouts.add((shape, slots, stacked, dim))
    if len(layouts) != 1:
        raise TowerModuleError("tower embeddings enter several interaction sites differently", "")
    return layouts.pop()


def _erase_chain(graph: fx.Graph, node: fx.Node) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.users:
            continue
        inputs = n.all_input_nodes
        graph.erase_node(n)
        stack.extend(i for i in inputs if i.op == "call_method" and i.target in _VIEWS)


def _copy_graph(graph: fx.Graph) -> fx.Graph:
    new = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    out = new.graph_copy(graph, env)
    new.output(out)
    for old, copied in env.items():
        copied.meta = dict(old.meta)
    return new


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
