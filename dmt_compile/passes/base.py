"""Pass infrastructure: `PassResult`, `Pass`, `PassContext` and `PassPipeline`.

A pass is a small callable object with a kebab-case `name`. It reads and writes the shared
`PassContext` (detection, plan, options) and returns `PassResult(gm, modified)`. The pipeline
lints and checks the graph after every pass, re-propagates shapes, hands the graph to an
optional callback (dumps), and wraps failures in `PassError` naming the pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import torch.fx as fx

from dmt_compile.errors import DmtError, PassError
from dmt_compile.ir.shapes import record_shapes

__all__ = ["PassResult", "Pass", "PassContext", "PassPipeline"]

log = logging.getLogger(__name__)


class PassResult(NamedTuple):
    graph_module: fx.GraphModule
    modified: bool


@dataclass
class PassContext:
    """State shared by the passes of one `transform` call."""

    topology: Any
    flat_inputs: list[Any]
    options: dict[str, Any] = field(default_factory=dict)
    detection: Any = None
    plan: Any = None
    reference_output: Any = None


class Pass:
    """Base class: subclasses set `name` and implement `call`; `ensures` checks invariants."""

    name: str = "pass"

    def __call__(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:
        return self.call(gm, ctx)

    def call(self, gm: fx.GraphModule, ctx: PassContext) -> PassResult:  # pragma: no cover
        raise NotImplementedError

    def ensures(self, gm: fx.GraphModule, ctx: PassContext) -> None:
        """Raise if the pass left the graph in a state it promised not to."""


Callback = Callable[[int, str, fx.GraphModule, PassContext], None]


class PassPipeline:
    """Run passes in order; after each mutation lint, recompile and re-propagate shapes; check each pass."""

    def __init__(self, passes: Sequence[Pass], callback: Callback | None = None, first_index: int = 1):
        self.passes = list(passes)
        self.callback = callback
        self.first_index = first_index

    def __call__(self, gm: fx.GraphModule, ctx: PassContext) -> fx.GraphModule:
        done: list[str] = []
        for offset, p in enumerate(self.passes):
            try:
                gm, modified = p(gm, ctx)
                if modified:  # analyses leave the graph alone: lint, regenerate code and shapes only after mutations
                    gm.graph.lint()
                    gm.recompile()
                    record_shapes(gm, ctx.flat_inputs)
                p.ensures(gm, ctx)
            except DmtError as exc:
                if isinstance(exc, PassError):
                    raise
                # typed user-facing errors keep their type; the pass name is added to the message
                exc.args = (f"[{p.name}] {exc.args[0]}",) + exc.args[1:]
                raise
            except Exception as exc:
                raise PassError(p.name, done, exc) from exc
            log.debug("after %s:\n%s", p.name, gm.graph)
            done.append(p.name)
            if self.callback is not None:
                self.callback(self.first_index + offset, p.name, gm, ctx)
        return gm
