"""The trial behind `plan-feed` (a helper of that pass, not a pass): can compressed embeddings feed
the interaction, and which layers must be rebuilt for it?

`run_trial` runs the model on a scratch copy of its graph in which each tower's compressed
embeddings (zeros of the piece shape) replace its lookups at the interaction site. With
`rebuild=False` (direct feed) any failure of the model's own code, or a change of the output
shapes, means "not polymorphic". With `rebuild=True` (hierarchical feed) the trial repairs, as it
goes, exactly the layers whose width depends on the number of vectors:

* an `nn.Linear` / `nn.LayerNorm` / `nn.BatchNorm1d` whose input width changed is rebuilt for the
  new width (the same module at another call site with an unchanged width is a conflict);
* an element-wise op that fails because a Linear's output (through activations) still has the old
  width while the other operand has the new one (DCN: `x0 * W x + x`) marks that Linear for an
  output rebuild too, and the trial restarts;
* indexing the interaction matrix with a buffer that is exactly `triu_indices(n, n, k)` or
  `tril_indices` (DLRM) recomputes that buffer for the new n.

These rules are `REPAIRS`, one `(match, repair)` pair each. Anything else that fails stops
hierarchical feed with the node and the reason (the model's exception chained as the cause and
logged at DEBUG). Which input columns / output rows of a rebuilt layer still exist is read from
values: a second scratch copy runs the original model with the same embeddings replaced by zeros,
and a column of the rebuilt layer's input that equals a non-constant column of the original
layer's input on every sample is the same feature (`column_runs`).

The stand-in embeddings are inputs of the scratch copies (placeholders, made before the run), so
only the model's own nodes run inside the guarded region: an exception there is read as "not
possible"; the repairs and everything else here run outside it, so their bugs propagate (the
pipeline reports them as a `PassError`). A restart after an element-wise repair is a value the
trial returns, not an exception.
"""
from __future__ import annotations

import logging
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import torch
import torch.fx as fx
from torch import nn
from torch.utils._pytree import tree_leaves

from dmt_compile.ir.evaluation import evaluation
from dmt_compile.ir.feed import RebuiltLayer, TowerFeed
from dmt_compile.ir.meta import SHAPE
from dmt_compile.ir.shapes import tree_shapes_equal
from dmt_compile.passes.feed_trial_graph import attr, buffer_source, producer_linear, splice
from dmt_compile.tower_modules.rebuild import (
    REBUILDABLE, column_runs, match_pair_indices, pair_indices, rebuild_linear, rebuild_norm,
)

__all__ = ["FeedNotApplicable", "run_trial", "REPAIRS"]

log = logging.getLogger(__name__)

_ELEMENTWISE_FUNCS = {operator.add, operator.mul, operator.sub, operator.truediv, torch.add, torch.mul,
                      torch.sub, torch.div, torch.multiply}
_ELEMENTWISE_METHODS = {"add", "mul", "sub", "div", "multiply"}
_REBUILT_WHAT = "nn.Linear, nn.LayerNorm, nn.BatchNorm1d and triu/tril index buffers"


class FeedNotApplicable(Exception):
    """Compressed embeddings cannot feed this model's interaction (the message says why)."""


class _Restart(NamedTuple):
    """A Linear was marked for an output rebuild: the trial stops and runs again (a value, not an exception)."""

    target: str


def _eval_run(interp: fx.Interpreter, inputs: list[Any]) -> Any:
    with evaluation(interp.module):
        return interp.run(*inputs)


def _what_failed(gm: fx.GraphModule, n: fx.Node, args: tuple) -> str:
    """Plain words for a node the compressed embeddings break: what it is and the shapes it got
    (never torch's own exception text, which names no layer of the user's model)."""
    if n.op == "call_module":
        mod = gm.get_submodule(n.target)
        what = f"{type(mod).__name__} {n.target}"
        if isinstance(mod, nn.Linear):
            what += f" ({mod.in_features} -> {mod.out_features})"
    else:
        what = getattr(n.target, "__name__", str(n.target))
    if n.target is operator.getitem and isinstance(args[0], (tuple, list)) and isinstance(args[1], int):
        return (f"the model's {n.name} takes item {args[1]} of {len(args[0])} pieces (it expects a fixed number "
                "of pieces, e.g. a loop over chunks specialised at capture)")
    # tree_leaves only reads the args: fx's map_aggregate rebuilds every named tuple it walks, and one whose
    # constructor checks its fields (torch's PackedSequence) cannot be rebuilt from the mapped values
    shapes = ["x".join(map(str, a.shape)) for a in tree_leaves(args) if isinstance(a, torch.Tensor)]
    got = f" receives {' and '.join(shapes)}" if shapes else ""
    return f"the model's {n.name} ({what}){got} and cannot run"


@dataclass
class _State:
    init: str
    out: dict[str, tuple[int, tuple]] = field(default_factory=dict)  # Linear target -> (new out width, row runs)
    modules: dict[str, nn.Module] = field(default_factory=dict)
    plain: set[str] = field(default_factory=set)  # rebuildable modules seen with their original width
    layers: dict[str, RebuiltLayer] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    index_users: set[str] = field(default_factory=set)


class _Trial(fx.Interpreter):
    """Runs the spliced copy; with `state`, rebuilds layers as described in the module docstring."""

    def __init__(self, gm: fx.GraphModule, ref: dict[str, Any], state: _State | None):
        super().__init__(gm)
        self.extra_traceback = False  # our messages name the node already
        self.ref, self.state = ref, state
        self.restart: _Restart | None = None  # set by a repair: the rest of this run is skipped

    def run_node(self, n: fx.Node) -> Any:
        if self.restart is not None or n.op in ("placeholder", "output"):
            return None if self.restart is not None else super().run_node(n)
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        rules = REPAIRS if self.state is not None else ()
        for rule in rules:
            if not rule.after_failure and rule.match(self, n, args):
                return rule.repair(self, n, args, kwargs)
        try:
            return getattr(self, n.op)(n.target, args, kwargs)  # the guarded region: one node of the model
        except Exception as exc:  # the model's own code, run on fewer embeddings
            failure = exc
        for rule in rules:  # outside the guarded region: a bug in a repair propagates
            if rule.after_failure and rule.match(self, n, args):
                self.restart = rule.repair(self, n, args, kwargs)
                return None
        log.debug("feed trial: %s fails on the stand-in embeddings", n.name, exc_info=failure)
        hint = f"; hierarchical feed rebuilds {_REBUILT_WHAT} only" if self.state is not None else ""
        raise FeedNotApplicable(f"{_what_failed(self.module, n, args)} with fewer embeddings{hint}") from failure

    # --- rebuildable modules -------------------------------------------------------------------------
    def _is_rebuildable(self, n: fx.Node, args: tuple) -> bool:
        return n.op == "call_module" and type(self.module.get_submodule(n.target)) in REBUILDABLE

    def _module(self, n: fx.Node, args: tuple, kwargs: dict) -> Any:
        st, target = self.state, n.target
        mod = self.module.get_submodule(target)
        kind = REBUILDABLE[type(mod)]
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor):
            return self.call_module(target, args, kwargs)
        axis, width = _width_axis(mod, kind, x)
        if target in st.modules:
            sub = st.modules[target]
            if width != _expected_width(sub, kind):
                raise FeedNotApplicable(f"{target} is applied to inputs of different widths once the embeddings are "
                                        "compressed; it cannot be rebuilt for one of them")
            return sub(*args, **kwargs)
        expected = _expected_width(mod, kind)
        if width == expected and target not in st.out:
            st.plain.add(target)
            return self.call_module(target, args, kwargs)
        if target in st.plain:
            raise FeedNotApplicable(f"{target} is applied both to an input whose width changes with the number of "
                                    "embeddings and to one whose width does not")
        if kind == "layer_norm" and len(mod.normalized_shape) != 1:
            raise FeedNotApplicable(f"{target} normalises over {tuple(mod.normalized_shape)}, whose size changes with "
                                    "the number of embeddings; only a LayerNorm over the last dim is rebuilt")
        in_runs = self._runs(n.args[0], x, axis) if width != expected else None
        st.modules[target] = sub = self._rebuilt(target, mod, kind, width, expected, in_runs).eval()
        return sub(*args, **kwargs)

    def _rebuilt(self, target: str, mod: nn.Module, kind: str, width: int, expected: int, in_runs) -> nn.Module:
        st = self.state
        copy = st.init == "copy"
        if kind == "linear":
            out_w, out_runs = st.out.get(target, (mod.out_features, None))
            sub = rebuild_linear(mod, width, out_w, in_runs if copy else (), out_runs if copy else ())
            old_shape, new_shape = (mod.out_features, mod.in_features), (out_w, width)
            why = [f"input width {expected} -> {width}"] if width != expected else []
            if target in st.out:
                why.append(f"output meets a tensor of width {out_w} element-wise")
        else:
            sub = rebuild_norm(mod, width, in_runs if copy else ())
            old_shape, new_shape, out_runs, why = (expected,), (width,), None, [f"width {expected} -> {width}"]
        st.layers[target] = RebuiltLayer(target, kind, old_shape, new_shape, "copy" if copy else "default",
                                         ", ".join(why), tuple(in_runs or ()) if copy else (),
                                         tuple(out_runs or ()) if copy else ())
        return sub

    def _runs(self, node: Any, value: torch.Tensor, axis: int) -> tuple:
        if self.state.init != "copy" or not isinstance(node, fx.Node):
            return ()
        return column_runs(value, self.ref.get(node.name), axis)

    # --- element-wise partner of a Linear (DCN cross layers) -----------------------------------------
    def _width_partner(self, n: fx.Node, args: tuple) -> tuple[fx.Node, tuple, fx.Node] | None:
        """(Linear call that kept the old width, (operand, value) that changed) for a failed element-wise op."""
        if not (n.op == "call_function" and n.target in _ELEMENTWISE_FUNCS
                or n.op == "call_method" and n.target in _ELEMENTWISE_METHODS):
            return None
        tensors = [(a, v) for a, v in zip(n.args, args) if isinstance(a, fx.Node) and isinstance(v, torch.Tensor)]
        if len(tensors) != 2 or any(a.meta.get(SHAPE) is None for a, _ in tensors):
            return None
        is_changed = [tuple(v.shape) != tuple(a.meta[SHAPE]) for a, v in tensors]
        if is_changed.count(True) != 1:
            return None
        changed, same = tensors[is_changed.index(True)], tensors[is_changed.index(False)]
        if changed[1].shape[-1] == same[1].shape[-1]:
            return None
        producer = producer_linear(self.module, same[0])
        if producer is None or producer.target in self.state.out:
            return None
        return producer, changed, n

    def _repair_elementwise(self, n: fx.Node, args: tuple, kwargs: dict) -> _Restart:
        """Mark the Linear behind the operand that kept the old width for an output rebuild."""
        producer, (partner, value), _ = self._width_partner(n, args)
        self.state.out[producer.target] = (value.shape[-1], self._runs(partner, value, -1))
        return _Restart(producer.target)

    # --- triu/tril index buffers (DLRM) --------------------------------------------------------------
    def _indexes_resized(self, n: fx.Node, args: tuple) -> bool:
        """A getitem of a tensor whose size changed, with a tensor buffer among its indices."""
        if not (n.op == "call_function" and n.target is operator.getitem):
            return False
        items = n.args[1] if isinstance(n.args[1], tuple) else (n.args[1],)
        if not any(buffer_source(self.module, it) for it in items) or not isinstance(args[0], torch.Tensor):
            return False
        old = n.args[0].meta.get(SHAPE)
        return old is not None and tuple(old) != tuple(args[0].shape)

    def _index(self, n: fx.Node, args: tuple, kwargs: dict) -> Any:
        items = n.args[1] if isinstance(n.args[1], tuple) else (n.args[1],)
        values = args[1] if isinstance(args[1], tuple) else (args[1],)
        sources = [buffer_source(self.module, it) for it in items]
        old, new = n.args[0].meta[SHAPE], tuple(args[0].shape)
        pos = [k for k, s in enumerate(sources) if s is not None]
        bad = len(pos) != 2 or pos[1] != pos[0] + 1 or any(
            not (isinstance(v, slice) and v == slice(None)) for v in values[:pos[0]])
        p = pos[0]
        if bad or old[p] != old[p + 1] or new[p] != new[p + 1]:
            raise FeedNotApplicable(f"the model's {n.name} indexes a tensor whose size changes with the number of "
                                    f"embeddings ({old} -> {new}) with the buffer {sources[pos[0]][0]}; only "
                                    "triu/tril pair indices of a square interaction matrix are recomputed")
        match = match_pair_indices(values[p], values[p + 1], old[p])
        if match is None:
            raise FeedNotApplicable(f"the model's {n.name} indexes the {old[p]}x{old[p]} interaction with "
                                    f"{sources[p][0]}, which is not triu/tril_indices({old[p]}, {old[p]}, k); "
                                    "only those are recomputed for the new number of vectors")
        kind, offset = match
        idx = pair_indices(kind, new[p], offset, values[p])
        self._record_buffers(sources[p], sources[p + 1], idx, kind, offset, old[p], new[p])
        self.state.index_users.add(n.name)
        out = list(values)
        out[p], out[p + 1] = idx[0], idx[1]
        return operator.getitem(args[0], tuple(out))

    def _record_buffers(self, a, b, idx: torch.Tensor, kind: str, offset: int, old_n: int, new_n: int) -> None:
        why = f"pair indices of the {old_n}x{old_n} interaction -> {new_n}x{new_n}"
        if a[0] == b[0] and (a[1], b[1]) == (0, 1):
            updates = {a[0]: (idx, -1)}
        elif a[1] is None and b[1] is None and a[0] != b[0]:
            updates = {a[0]: (idx[0], 0), b[0]: (idx[1], 1)}
        else:
            raise FeedNotApplicable(f"pair indices {a[0]} / {b[0]} are laid out in a way hierarchical feed does not "
                                    "rebuild (one [2, M] buffer indexed [0] and [1], or two [M] buffers)")
        for target, (value, row) in updates.items():
            if target in self.state.buffers and not torch.equal(self.state.buffers[target], value):
                raise FeedNotApplicable(f"the buffer {target} indexes interactions of different sizes")
            old = attr(self.module, target)
            self.state.buffers[target] = value
            self.state.layers.setdefault(target, RebuiltLayer(
                target, kind, tuple(old.shape), tuple(value.shape), "recomputed", why, offset=offset,
                vectors=(old_n, new_n), row=row))


class Repair(NamedTuple):
    """One rule of hierarchical feed: where it applies, and what runs instead of (or after) the node."""

    match: Callable[[_Trial, fx.Node, tuple], bool]  # (trial, model node, its argument values)
    repair: Callable[[_Trial, fx.Node, tuple, dict], Any]  # the node's value, or a _Restart mark
    after_failure: bool = False  # False: runs instead of the node; True: only once the node has failed


REPAIRS: list[Repair] = [
    # an nn.Linear / LayerNorm / BatchNorm1d whose input width changed runs rebuilt for the new width
    Repair(_Trial._is_rebuildable, _Trial._module),
    # a triu/tril_indices buffer indexing the interaction matrix (DLRM) is recomputed for the new n
    Repair(_Trial._indexes_resized, _Trial._index),
    # an element-wise op that failed because a Linear's output kept the old width (DCN `x0 * W x + x`)
    # marks that Linear for an output rebuild, and the trial runs again
    Repair(lambda trial, n, args: trial._width_partner(n, args) is not None, _Trial._repair_elementwise, True),
]


def _width_axis(mod: nn.Module, kind: str, x: torch.Tensor) -> tuple[int, int]:
    axis = 1 if kind == "batch_norm" else -1
    return axis, x.shape[axis] if x.dim() >= 2 or axis == -1 and x.dim() == 1 else -1


def _expected_width(mod: nn.Module, kind: str) -> int:
    if kind == "linear":
        return mod.in_features
    if kind == "layer_norm":
        return mod.normalized_shape[-1]
    return mod.num_features


def _check_buffer_uses(gm: fx.GraphModule, state: _State) -> None:
    """Every use of a recomputed index buffer must be one of the interaction indexings that changed size."""
    for n in gm.graph.nodes:
        if n.op != "get_attr" or n.target not in state.buffers:
            continue
        for user in n.users:
            row = user.op == "call_function" and user.target is operator.getitem and user.args[0] is n \
                and isinstance(user.args[1], int)
            ends = list(user.users) if row else [user]
            stray = [u.name for u in ends if u.name not in state.index_users]
            if stray:
                raise FeedNotApplicable(f"the buffer {n.target} is also used by {stray[0]}, whose size does not change; "
                                        "it cannot be recomputed for the interaction alone")


def run_trial(gm: fx.GraphModule, flat_inputs: list[Any], reference_output: Any, towers: list[TowerFeed],
              nodes: list[list[fx.Node]], rebuild: bool, init: str = "copy") -> tuple[RebuiltLayer, ...]:
    """Run the model with every tower's compressed embeddings at its sites; the layers to rebuild.

    Raises FeedNotApplicable when the model cannot take them (`rebuild=False`: any failure or
    output shape change; `rebuild=True`: anything but the layers listed in the module docstring).
    The global RNG is left as it was (trial layers draw their default init from a forked RNG).
    """
    trial, stand_ins = splice(gm, towers, nodes, compressed=True)
    ref: dict[str, Any] = {}
    if rebuild and init == "copy":
        zeroed, zeros = splice(gm, towers, nodes, compressed=False)
        interp = fx.Interpreter(zeroed, garbage_collect_values=False)
        _eval_run(interp, [*flat_inputs, *zeros])
        ref = {n.name: v for n, v in interp.env.items()}
    limit = 2 + sum(isinstance(m, nn.Linear) for m in gm.modules())
    marks: dict[str, tuple[int, tuple]] = {}
    with torch.random.fork_rng(devices=[]):
        for _ in range(limit):
            state = _State(init, out=dict(marks)) if rebuild else None
            run = _Trial(trial, ref, state)
            out = _eval_run(run, [*flat_inputs, *stand_ins])
            if run.restart is None:
                break
            log.debug("feed trial: %s is rebuilt for a new output width too; running again", run.restart.target)
            marks = state.out
        else:  # pragma: no cover - each restart marks one more Linear, so this is not reached
            raise FeedNotApplicable("the element-wise repairs of rebuilt layers do not converge")
    if not tree_shapes_equal(out, reference_output):
        raise FeedNotApplicable("the interaction is not shape-polymorphic (the output shapes change)")
    if state is None:
        return ()
    _check_buffer_uses(trial, state)
    return tuple(state.layers.values())
