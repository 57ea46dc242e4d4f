"""Enumerate the candidates a model admits (and the refused ones, with why), under the user's pins.

The space: `flat`, SPTT with identity Tower Modules, and SPTT + each compressing Tower Module x
every compression the towers can actually meet x feed (the model's embedding feed — direct or
hierarchical — and decoders) x wire dtype (`WIRE_DTYPES`: what the runtime carries). Requested
compressions run over `COMPRESSIONS`; two values that give every tower the same output width are
one candidate (labelled by the first c and its effective compression, elements looked up over
elements leaving the towers). Everything derives from one tower plan (`ModelFacts`): no candidate
is transformed.

Pins (`Pins`): a pinned Tower Module, compression, feed or wire dtype keeps only the candidates
that have it (pinning a Tower Module or compression drops `flat`; identity drops every compressing
candidate); the tower pins, tower count and partitioner shape the one plan itself.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from dmt_compile.errors import TowerModuleError
from dmt_compile.passes.plan_feed import FeedNotApplicable
from dmt_compile.strategy.admission import ModelFacts, tower_feeds
from dmt_compile.strategy.candidate import WIRE_BYTES, WIRE_DTYPES, Candidate, Refusal, TowerLoad
from dmt_compile.strategy.tm_cost import decoder_flops_params, tm_flops_params
from dmt_compile.tower_modules import TOWER_MODULES

__all__ = ["Pins", "COMPRESSIONS", "enumerate_candidates", "compressing_modules"]

COMPRESSIONS = (2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)


def compressing_modules() -> tuple[str, ...]:
    return tuple(sorted(name for name, core in TOWER_MODULES.items() if core is not None))


@dataclass(frozen=True)
class Pins:
    """User choices the search keeps fixed (None: searched)."""

    tower_module: str | None = None
    compression: float | None = None
    feed: str | None = None  # direct | hierarchical | decoder ("auto" means searched)
    wire_dtype: str | None = None

    def check(self) -> "Pins":
        if self.wire_dtype is not None and self.wire_dtype not in WIRE_DTYPES:
            known = f"wire dtype {self.wire_dtype!r} is not searched by strategy='auto'" if self.wire_dtype in WIRE_BYTES \
                else f"unknown wire dtype {self.wire_dtype!r}"
            raise TowerModuleError(known, "use one of: " + ", ".join(WIRE_DTYPES))
        if self.tower_module == "identity" and self.compression not in (None, 1, 1.0):
            raise TowerModuleError(f"the identity tower module cannot compress (compression={self.compression})",
                                   "leave compression out, or pin a compressing tower module")
        return self

    def admits(self, c: Candidate) -> bool:
        if self.wire_dtype is not None and c.wire_dtype != self.wire_dtype:
            return False
        if self.tower_module is not None and (c.strategy == "flat" or c.tower_module != self.tower_module):
            return False
        if self.compression is not None and (c.tower_module == "identity" or c.compression != self.compression):
            return False
        return self.feed is None or c.feed == self.feed


def _loads(facts: ModelFacts, tm: str, feeds: list, feed: str) -> tuple[tuple[TowerLoad, ...], float, float]:
    """(tower loads, decoder FLOPs, decoder params) of `tm` on the towers' `feeds`."""
    towers, dec_flops, dec_params = [], 0.0, 0.0
    for d, tf in zip(facts.plan.details, feeds):
        flops, params = tm_flops_params(tm, tf.in_widths, tf.core_width, tf.embedding_dim)
        towers.append(TowerLoad(d.host, d.width_in, len(d.lookups), tf.width_out, flops, params,
                                (tuple(tf.in_widths), tf.core_width, tf.embedding_dim)))
        if feed == "decoder":
            f, p = decoder_flops_params(tf.core_width, tf.in_widths)
            dec_flops, dec_params = dec_flops + f, dec_params + p
    return tuple(towers), dec_flops, dec_params


def _identity_loads(facts: ModelFacts) -> tuple[TowerLoad, ...]:
    return tuple(TowerLoad(d.host, d.width_in, len(d.lookups), d.width_in) for d in facts.plan.details)


def _compressing(facts: ModelFacts, pins: Pins, wire: str, refused: list[Refusal]) -> list[Candidate]:
    """Every Tower Module x effective compression x feed for one wire dtype (tower widths do not depend
    on the Tower Module: they are derived once per compression and feed)."""
    feeds = [f for f in (facts.embedding_feed, "decoder") if f and pins.feed in (None, f)]
    tms = [tm for tm in compressing_modules() if pins.tower_module in (None, tm)]
    out: list[Candidate] = []
    width_in = sum(d.width_in for d in facts.plan.details)
    for feed in feeds:
        seen: dict[tuple, float] = {}
        for c in (pins.compression,) if pins.compression is not None else COMPRESSIONS:
            try:
                tower_feeds_c = tower_feeds(facts, float(c), feed)
            except FeedNotApplicable as exc:
                refused.append(Refusal(f"sptt/*/c={c:g}/{feed}/{wire}", str(exc)))
                continue
            shape = tuple(tf.width_out for tf in tower_feeds_c)
            if shape in seen:
                refused.append(Refusal(f"sptt/*/c={c:g}/{feed}/{wire}", f"meets the same tower widths as c={seen[shape]:g} "
                                                                        "(towers narrower than c are clamped)"))
                continue
            seen[shape] = c
            eff = width_in / max(1.0, sum(shape))
            for tm in tms:
                towers, dec_flops, dec_params = _loads(facts, tm, tower_feeds_c, feed)
                out.append(Candidate("sptt", tm, float(c), feed, wire, towers, eff, dec_flops, dec_params))
    return out


def _space_refusals(facts: ModelFacts) -> list[Refusal]:
    refused = [Refusal(f"wire {w}", "not searched (pin it with transform(wire_dtype=...) and strategy='manual')")
               for w in WIRE_BYTES if w not in WIRE_DTYPES]
    if facts.sptt_refusal:
        return refused + [Refusal("sptt/*", facts.sptt_refusal)]
    if facts.compress_refusal:
        return refused + [Refusal("sptt/<compressing>/*", facts.compress_refusal)]
    if not facts.embedding_feed:
        refused.append(Refusal("sptt/*/direct, sptt/*/hierarchical", facts.embedding_feed_refusal))
    elif facts.embedding_feed == "hierarchical":
        refused.append(Refusal("sptt/*/direct", facts.embedding_feed_refusal))
    else:
        refused.append(Refusal("sptt/*/hierarchical", "not needed: the model takes direct feed (shape-polymorphic)"))
    return refused


def enumerate_candidates(facts: ModelFacts, pins: Pins = Pins()) -> tuple[list[Candidate], list[Refusal]]:
    """(admitted candidates in a stable order, refusals); see the module docstring."""
    pins = pins.check()
    refused = _space_refusals(facts)
    out: list[Candidate] = []
    for wire in WIRE_DTYPES:
        flat = Candidate("flat", feed="flat", wire_dtype=wire,
                         towers=(TowerLoad(0, sum(facts.flat_widths), sum(facts.flat_ids), sum(facts.flat_widths)),))
        out.append(flat)
        if facts.sptt_refusal:
            continue
        out.append(Candidate("sptt", wire_dtype=wire, towers=_identity_loads(facts)))
        if not facts.compress_refusal:
            out += _compressing(facts, pins, wire, refused)
    dense = facts.dense
    kept = [replace(c, dense_flops=dense.flops_per_sample, dense_ops=dense.ops, dense_params=dense.params)
            for c in out if pins.admits(c)]
    if not kept:
        why = "; ".join(f"{r.what}: {r.reason}" for r in refused) or "no candidate has them"
        raise TowerModuleError(f"no candidate the model admits matches the pins {pins}: {why}",
                               "loosen a pin (tower_module, compression, feed) or leave strategy='auto' out")
    return kept, refused
