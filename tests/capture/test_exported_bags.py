"""The export path: `nn.EmbeddingBag` lookups are lookups.

Before: torch.export spells an `nn.EmbeddingBag` call as `aten.embedding_bag.padding_idx` (or
`aten.embedding_bag` / `aten._embedding_bag`), returning a 4-tuple of which the model reads item 0;
the normal form knew only `aten.embedding`, so detection found "no embedding lookup" in a model made
of bags (a library wrapping each categorical feature's table in an EmbeddingBag, captured on the
export path). Expected: each bag is an `F.embedding_bag` lookup on its table, one feature per input
column, and the rewrite is exact at another batch size.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dmt_compile
from dmt_compile.capture.capture import capture


class Bags(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.EmbeddingBag(10, 4, mode="mean", padding_idx=0)
        self.b = nn.EmbeddingBag(10, 4, mode="sum")
        self.out = nn.Linear(8, 1)

    def forward(self, x):
        a = self.a(x[:, 0:3])  # [B, 3] ids: one bag per row
        b = self.b(x[:, 3].reshape(-1, 1))
        return self.out(torch.cat([a, b], dim=1))


def _x(batch, seed=0):
    return torch.randint(0, 10, (batch, 4), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("path", ["export", "export-static"])
def test_exported_embedding_bags_become_functional_lookups(path):
    model = Bags().eval()
    cap = capture(model, (_x(8),), paths=(path,))
    bags = [n for n in cap.gm.graph.nodes if n.op == "call_function" and n.target is F.embedding_bag]
    assert len(bags) == 2
    with torch.no_grad():
        assert torch.equal(cap.gm(_x(8)), model(_x(8)))


def test_a_model_of_bags_towers_on_the_export_path():
    model = Bags().eval()
    dmt = dmt_compile.transform(model, "2x2", (_x(8),), capture_paths="export")
    assert dmt.plan.num_towers == 2 and len(dmt.detection.features) >= 2
    with torch.no_grad():
        assert torch.equal(dmt(_x(3, seed=1)), model(_x(3, seed=1)))


def test_an_exported_graph_refuses_other_non_batch_sizes_with_a_typed_error():
    """Before: torch.export fixes every non-batch size of the example (`view(B, 6 * D)`); a call with a history
    of 7 failed inside the graph with an untyped RuntimeError. Expected: the batch stays free, any other size
    is checked on entry and refused with an InputError naming the input and the sizes it was captured with."""
    from dmt_compile.errors import InputError

    class History(nn.Module):
        def __init__(self):
            super().__init__()
            self.user, self.item = nn.Embedding(10, 4), nn.Embedding(10, 4)
            self.top = nn.Linear(4 + 6 * 4, 1)

        def forward(self, user, hist):
            return self.top(torch.cat([self.user(user), self.item(hist).view(hist.shape[0], 6 * 4)], 1))

    def batch(b, length=6):
        g = torch.Generator().manual_seed(b)
        return torch.randint(0, 10, (b,), generator=g), torch.randint(0, 10, (b, length), generator=g)

    model = History()
    dmt = dmt_compile.transform(model, "2x2", batch(8), capture_paths="export")
    assert dmt.capture_report.path == "export"
    assert torch.equal(dmt(*batch(5)), model(*batch(5)))
    with pytest.raises(InputError, match=r"input hist has shape \(5, 7\).*\(B, 6\)"):
        dmt(*batch(5, length=7))
