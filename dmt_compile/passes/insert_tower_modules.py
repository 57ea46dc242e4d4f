"""insert-tower-modules: apply the FeedPlan, replacing each tower's identity Tower Module.

Mutation only; every decision was made by `plan-feed`. Per compressing tower t:

* `dmt.tower{t}_tm` becomes a `CompressingTowerModule` (the chosen core over the compressed
  lookups; pass-through lookups follow its output in the payload);
* `decoder`: after the exchange `dmt.tower{t}_decoder` restores every original tensor, and the
  reassembly getitems read from it;
* `direct` / `hierarchical`: after the exchange `dmt.tower{t}_feed` cuts the core output into
  embeddings that replace the compressed lookups' elements in the interaction's cat/stack; the
  view chains that led there are erased.

Then every layer in `FeedPlan.rebuilt` is replaced under its own name (state_dict keys keep
their names): Linear / LayerNorm / BatchNorm1d rebuilt for the new width (`tower_modules.rebuild`:
PyTorch's default init, plus the trained values of the columns and rows that still exist when the
plan says `copy`), triu/tril index buffers recomputed for the new number of vectors.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch.fx as fx
from torch import nn

from dmt_compile.errors import TowerModuleError
from dmt_compile.ir.feed import FeedPlan, RebuiltLayer, TowerFeed
from dmt_compile.ir.graph import TowerNodes, call_module, is_impure, is_view_step, tag, tower_nodes
from dmt_compile.ir.meta import Role
from dmt_compile.ir.module_paths import tower_decoder, tower_feed, tower_module
from dmt_compile.passes.base import Pass, PassContext, PassResult
from dmt_compile.tower_modules import CompressingTowerModule, DirectFeed, TowerDecoder, make_core
from dmt_compile.tower_modules.wrappers import pair_as_projection
from dmt_compile.tower_modules.dtypes import tower_tensor
from dmt_compile.tower_modules.rebuild import pair_indices, rebuild_linear, rebuild_norm

__all__ = ["InsertTowerModules"]


def _erase_view_chain(graph: fx.Graph, node: fx.Node) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if n.users:
            continue
        inputs = n.all_input_nodes
        graph.erase_node(n)
        stack.extend(i for i in inputs if is_view_step(i))


def _rebuild(gm: fx.GraphModule, layer: RebuiltLayer) -> None:
    """Replace the module or buffer `layer.target` by its rebuilt version (same name)."""
    parent_name, _, name = layer.target.rpartition(".")
    parent = gm.get_submodule(parent_name)
    old = getattr(parent, name)
    if layer.kind in ("triu_indices", "tril_indices"):
        idx = pair_indices(layer.kind, layer.vectors[-1], layer.offset, old)
        value = idx if layer.row < 0 else idx[layer.row]
        parent.register_buffer(name, value, persistent=name not in parent._non_persistent_buffers_set)
        return
    if tuple(old.weight.shape) != layer.old_shape:
        raise TowerModuleError(f"{layer.target} has shape {tuple(old.weight.shape)}, the feed plan expected "
                               f"{layer.old_shape}", "run plan-feed again on this graph")
    copy = layer.init == "copy"
    changed_in = layer.new_shape[-1] != layer.old_shape[-1]
    in_runs = (layer.in_runs if changed_in else None) if copy else ()
    if layer.kind == "linear":
        changed_out = layer.new_shape[0] != layer.old_shape[0]
        out_runs = (layer.out_runs if changed_out else None) if copy else ()
        new: nn.Module = rebuild_linear(old, layer.new_shape[1], layer.new_shape[0], in_runs, out_runs)
    else:
        new = rebuild_norm(old, layer.new_shape[0], in_runs if copy else ())
    setattr(parent, name, new)


@dataclass(frozen=True)
class InsertTowerModules(Pass):
    name = "insert-tower-modules"
    needs = (FeedPlan,)

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        feed = ctx.get(FeedPlan)
        if feed.identity:
            return PassResult(gm, False)
        towers = tower_nodes(gm.graph)
        for tf in feed.towers:
            core = make_core(feed.tower_module, tf.in_widths, tf.core_width, tf.embedding_dim)
            tm = CompressingTowerModule(core, tf.compress)
            like = tower_tensor(gm, towers[tf.tower])  # float16/bfloat16/float64 tables: a TM of their dtype
            if like is not None:
                tm = tm.to(device=like.device, dtype=like.dtype)
            gm.add_submodule(tower_module(tf.tower), tm)
            if tf.feed == "decoder":
                self._decoder(gm, towers[tf.tower], tf)
            else:
                self._direct(gm, towers[tf.tower], tf)
        for layer in feed.rebuilt:
            _rebuild(gm, layer)
        gm.graph.eliminate_dead_code(is_impure_node=is_impure)
        return PassResult(gm, True)

    def _reroute_payload(self, graph: fx.Graph, tn: TowerNodes, count: int) -> fx.Node:
        """Payload = the Tower Module's `count` outputs; returns getitem(out, 0) (the core output)."""
        t, old = tn.tower, tn.payload
        with graph.inserting_before(tn.out):
            new = [tag(graph.call_function(operator.getitem, (tn.tm, i), name=f"tower{t}_payload_c{i}"),
                       self.name, tower=t, role=Role.TOWER_MODULE) for i in range(count)]
        tn.out.args = (t, *new)
        for p in old:
            graph.erase_node(p)
        with graph.inserting_after(tn.out):
            return tag(graph.call_function(operator.getitem, (tn.out, 0), name=f"tower{t}_out_c"),
                       self.name, tower=t, role=Role.REASSEMBLE)

    def _decoder(self, gm: fx.GraphModule, tn: TowerNodes, tf: TowerFeed) -> None:
        t, graph = tn.tower, gm.graph
        decoder = TowerDecoder(tf.core_width, tf.shapes, tf.keyed)
        pair_as_projection(gm.get_submodule(tower_module(t)).core, decoder)
        like = tower_tensor(gm, tn)  # the tables' dtype and device, like the Tower Module's
        gm.add_submodule(tower_decoder(t), decoder if like is None else decoder.to(device=like.device, dtype=like.dtype))
        parts = tn.parts
        y = self._reroute_payload(graph, tn, 1)
        with graph.inserting_after(y):
            dec = tag(call_module(graph, tower_decoder(t), (y,), name=f"tower{t}_decoder"),
                      self.name, tower=t, role=Role.DECODER)
        for k, part in enumerate(parts):
            part.args = (dec, k)
            tag(part, self.name, tower=t, role=Role.DECODER)

    def _direct(self, gm: fx.GraphModule, tn: TowerNodes, tf: TowerFeed) -> None:
        t, graph = tn.tower, gm.graph
        gm.add_submodule(tower_feed(t), DirectFeed(tf.pieces, tf.piece_shape))
        parts = tn.parts
        by_name = {n.name: n for n in graph.nodes}
        y = self._reroute_payload(graph, tn, 1 + tf.compress.count(False))
        with graph.inserting_after(y):
            feed = tag(call_module(graph, tower_feed(t), (y,), name=f"tower{t}_feed"),
                       self.name, tower=t, role=Role.FEED)
        fed, prev = [], feed
        for i in range(tf.pieces):
            with graph.inserting_after(prev):
                prev = tag(graph.call_function(operator.getitem, (feed, i), name=f"tower{t}_emb_{i}"),
                           self.name, tower=t, role=Role.FEED)
            fed.append(prev)
        sites: dict[str, list[fx.Node]] = {}
        for use in tf.uses:
            sites.setdefault(use.site, []).append(by_name[use.element] if use.element else parts[use.lookup])
        for site_name, elements in sites.items():
            site = by_name[site_name]
            items = list(site.args[0])
            first = min(items.index(e) for e in elements)
            kept = [x for x in items if x not in elements]
            site.args = (kept[:first] + fed + kept[first:], *site.args[1:])
        passed = [p for p, c in zip(parts, tf.compress) if not c]
        for i, p in enumerate(passed):
            p.args = (tn.out, 1 + i)
        for p, c in zip(parts, tf.compress):
            if c:
                _erase_view_chain(graph, p)
