"""Pass infrastructure: `Pass`, `PassResult`, `PassContext`, `PassPipeline`.

A pass is a frozen dataclass with a kebab-case `name`; its options are its fields, each declared
once with `option(...)` metadata (`passes/option_field.py`) and checked by `check_fields`. It declares
the analyses it `needs` (types, e.g. `Detection`) and those it `produces`; analyses are frozen
values the pipeline stores in the context by type, so a pass reads `ctx.get(Detection)` and never
writes into the context itself. `requires(gm, ctx)` / `ensures(gm, ctx)` check the pass's graph
invariants before and after it runs.

Contract (see passes/README.md): the graph lints and every tensor node carries `dmt.shape`
before and after every pass; a pass that changes the graph returns `modified=True`, and the
pipeline then lints, recompiles and re-propagates shapes. Failures are wrapped in `PassError`
naming the pass and the passes that ran before it; typed `DmtError`s keep their type.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, NamedTuple, Sequence, TypeVar

import torch.fx as fx

from dmt_compile.capture.inputs import InputSpec
from dmt_compile.errors import DmtError, InputError, PassError
from dmt_compile.ir.shapes import record_shapes
from dmt_compile.passes.option_field import fix_text, option_fields, value_problem
from dmt_compile.topo import Topology

__all__ = ["Pass", "PassResult", "PassContext", "PassPipeline", "Callback"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class PassResult(NamedTuple):
    graph_module: fx.GraphModule
    modified: bool
    analyses: tuple = ()  # frozen values of the types in the pass's `produces`


@dataclass
class PassContext:
    """The inputs of one `transform` call and the analyses produced so far (by type)."""

    topology: Topology
    input_spec: InputSpec
    flat_inputs: list[Any]
    reference_output: Any
    calibration: tuple[list[Any], ...] = ()  # flattened calibration batches (learned partitioner)
    analyses: dict[type, Any] = field(default_factory=dict)

    def get(self, kind: type[T]) -> T:
        """The analysis of type `kind`; a `PassError`-worthy KeyError when no pass produced it yet."""
        try:
            return self.analyses[kind]
        except KeyError:
            raise KeyError(f"no {kind.__name__} has been produced yet (a pass that makes it must run first)") from None

    def has(self, kind: type) -> bool:
        return kind in self.analyses


@dataclass(frozen=True)
class Pass:
    """Base class: set `name`, `needs`, `produces`; implement `call` (and optionally requires/ensures)."""

    name: ClassVar[str] = "pass"
    needs: ClassVar[tuple[type, ...]] = ()
    produces: ClassVar[tuple[type, ...]] = ()
    propagates_shapes: ClassVar[bool] = True  # False: the result cannot run on the example inputs alone
    option_error: ClassVar[type[DmtError]] = InputError  # the typed error a bad option value raises

    def check_fields(self) -> None:
        """Raise `option_error` naming an option field whose value its declaration refuses (no graph needed).

        A pass with rules across its fields extends this (and calls `super().check_fields()` first).
        """
        for f, spec, kind in option_fields(type(self)):
            problem = value_problem(f.name, getattr(self, f.name), kind, spec)
            if problem:
                raise self.option_refused(f.name, problem, fix_text(f.name, spec))

    def option_refused(self, name: str, problem: str, fix: str) -> DmtError:
        """The pass's typed error for option `name`; `.option` names it (the CLI prints the flag)."""
        error = self.option_error(problem, fix)
        error.option = name
        return error

    def requires(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        """Raise if the graph is not in the state this pass expects."""

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        """Raise if the pass left the graph in a state it promised not to."""

    def __call__(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        return self.call(gm, ctx)


Callback = Callable[[int, str, fx.GraphModule, PassContext], None]


class PassPipeline:
    """Run passes in order; check needs/produces and invariants; lint, recompile and re-shape after mutations."""

    def __init__(self, passes: Sequence[Pass], callback: Callback | None = None, first_index: int = 1):
        self.passes = list(passes)
        self.callback = callback
        self.first_index = first_index

    def __call__(self, gm: fx.GraphModule, ctx: PassContext) -> fx.GraphModule:
        done: list[str] = []
        for offset, p in enumerate(self.passes):
            try:
                gm = self._run(p, gm, ctx)
            except DmtError as exc:
                if not isinstance(exc, PassError):  # typed user-facing errors keep their type
                    exc.args = (f"[{p.name}] {exc.args[0]}",) + exc.args[1:]
                raise
            except Exception as exc:
                raise PassError(p.name, done, exc) from exc
            log.debug("after %s:\n%s", p.name, gm.graph)
            done.append(p.name)
            if self.callback is not None:
                self.callback(self.first_index + offset, p.name, gm, ctx)
        return gm

    @staticmethod
    def _run(p: Pass, gm: fx.GraphModule, ctx: PassContext) -> fx.GraphModule:
        missing = [k.__name__ for k in p.needs if not ctx.has(k)]
        if missing:
            raise RuntimeError(f"needs {', '.join(missing)}, which no earlier pass produced")
        p.check_fields()
        p.requires(gm, ctx)
        gm, modified, analyses = p(gm, ctx)
        if modified:  # analyses leave the graph alone: lint, regenerate code and shapes only after mutations
            gm.graph.lint()
            gm.recompile()
            if p.propagates_shapes:
                record_shapes(gm, ctx.flat_inputs)
        produced = {type(a) for a in analyses}
        if produced != set(p.produces):
            raise RuntimeError(f"produced {sorted(t.__name__ for t in produced)}, "
                               f"declared {sorted(t.__name__ for t in p.produces)}")
        for a in analyses:
            ctx.analyses[type(a)] = a
        p.ensures(gm, ctx)
        return gm
