"""Run one pass alone on a small graph: capture, a context, and node counts before/after."""
from __future__ import annotations

from collections import Counter

import torch
from torch import nn

from dmt_compile.capture import capture
from dmt_compile.passes.base import PassContext, PassPipeline
from dmt_compile.printing import format_compact, target_name
from dmt_compile.topo import as_topology


class TwoTables(nn.Module):
    """Two fields, one table each, stacked for a dot-style interaction: x[:, 0] -> a, x[:, 1] -> b."""

    def __init__(self, dim: int = 4):
        super().__init__()
        self.a = nn.Embedding(10, dim)
        self.b = nn.Embedding(12, dim)
        self.top = nn.Linear(2 * dim, 1)

    def forward(self, x):
        e = torch.stack([self.a(x[:, 0]), self.b(x[:, 1])], dim=1)
        return self.top(e.flatten(1))


class FourFields(nn.Module):
    """Four fields stacked; the interaction (a sum over fields) is polymorphic in the field count."""

    def __init__(self, dim: int = 4):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(10 + i, dim) for i in range(4))
        self.top = nn.Linear(dim, 1)

    def forward(self, x):
        e = torch.stack([t(x[:, i]) for i, t in enumerate(self.tables)], dim=1)
        return self.top(e.sum(1))


def ids(batch: int = 6, fields: int = 2) -> torch.Tensor:
    return torch.arange(batch * fields).reshape(batch, fields) % 10


def prepare(model: nn.Module, inputs: tuple, topology: str = "2x2"):
    """(captured graph, a fresh PassContext) for `model(*inputs)`."""
    torch.manual_seed(0)
    cap = capture(model, inputs)
    return cap.gm, PassContext(as_topology(topology), cap.spec, cap.flat_inputs, cap.reference_output)


def node_counts(gm) -> Counter:
    return Counter(target_name(n, gm).split(" [")[0].rstrip("0123456789_") if n.op != "call_module"
                   else type(gm.get_submodule(n.target)).__name__ for n in gm.graph.nodes)


def run_alone(p, gm, ctx):
    """Run pass `p` alone; returns (graph module, nodes added, nodes removed) by target."""
    before = node_counts(gm)
    gm = PassPipeline([p])(gm, ctx)
    after = node_counts(gm)
    return gm, after - before, before - after


def compact(gm) -> str:
    return format_compact(gm)
