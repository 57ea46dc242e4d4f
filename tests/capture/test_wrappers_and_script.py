"""Models handed over wrapped or partly scripted (capture/wrappers.py, capture/tracer.py, capture/copying.py).

Before: `transform(torch.compile(model), ...)` failed inside Dynamo ("the model does not run on
example_inputs: InternalTorchDynamoError"); a `torch.jit.script`-ed submodule was traced through its
C++ module `_c`, so the rewrite's `parameters()` lacked that submodule's weights (an optimizer built
on it never trained them) and `deepcopy` of the rewrite failed on non-leaf tensors.
Expected: compile / DataParallel wrappers are taken off (the capture report says so, state names stay
the module's own); a script submodule is a leaf whose parameters the rewrite owns as leaves and
trains; a model scripted whole is refused with the fix.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import dmt_compile
from dmt_compile.errors import InputError

V, D, FIELDS = 10, 4, 4


class Flat(nn.Module):
    def __init__(self, scripted_head: bool = False):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(V, D) for _ in range(FIELDS))
        head = nn.Sequential(nn.Linear(FIELDS * D, 8), nn.ReLU(), nn.Linear(8, 1))
        self.head = torch.jit.script(head) if scripted_head else head

    def forward(self, x):
        return self.head(torch.cat([t(x[:, i]) for i, t in enumerate(self.tables)], 1))


def _ids(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (batch, FIELDS), generator=torch.Generator().manual_seed(seed))


def _exact(dmt, model) -> None:
    for batch, seed in ((16, 0), (7, 1)):
        x = _ids(batch, seed)
        assert torch.equal(dmt(x), model(x))


def test_a_scripted_submodule_is_a_leaf_whose_parameters_the_rewrite_owns_and_trains():
    torch.manual_seed(0)
    model = Flat(scripted_head=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dmt = dmt_compile.transform(model, "2x2", (_ids(16),))
    _exact(dmt, model)
    assert any(n.op == "call_module" and n.target == "head" for n in dmt.graph_module.graph.nodes)
    params = dict(dmt.named_parameters())
    head = [p for name, p in params.items() if "head" in name]
    assert len(head) == 4 and all(p.is_leaf and p.requires_grad for p in head)
    copy.deepcopy(dmt)  # non-leaf clones made this fail
    opt = torch.optim.Adam(dmt.parameters(), lr=0.01)
    dmt(_ids(16)).sum().backward()
    opt.step()
    assert all(not torch.equal(p, q) for p, q in zip(head, model.head.parameters()))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the user's model untouched


def test_a_scripted_submodule_trains_at_linear_c4():
    torch.manual_seed(0)
    dmt = dmt_compile.transform(Flat(scripted_head=True), "2x2", (_ids(16),), tower_module="linear", compression=4)
    dmt.train()
    opt = torch.optim.Adam(dmt.parameters(), lr=0.01)
    target = torch.rand(16, 1, generator=torch.Generator().manual_seed(3))
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = ((dmt(_ids(16)) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("wrap, name", [
    (lambda m: torch.compile(m), "torch.compile"),
    (lambda m: nn.DataParallel(m), "DataParallel"),
    (lambda m: torch.compile(nn.DataParallel(m)), None),
])
def test_compile_and_data_parallel_wrappers_are_taken_off(wrap, name):
    torch.manual_seed(0)
    model = Flat()
    dmt = dmt_compile.transform(wrap(model), "2x2", (_ids(16),))  # the compiled wrapper itself never runs
    _exact(dmt, model)
    expected = (name,) if name else ("torch.compile", "DataParallel")
    assert dmt.capture_report.unwrapped == expected
    assert f"unwrapped: {expected[0]}" in str(dmt.capture_report)
    assert set(dmt.state_dict()) == set(model.state_dict())  # no `_orig_mod.` / `module.` prefix


def test_run_passes_takes_wrappers_off_too():
    from dmt_compile.api import run_passes
    from dmt_compile.passes import parse_pipeline

    gm, ctx, report = run_passes(torch.compile(Flat()), "2x2", (_ids(16),), parse_pipeline("detect"))
    assert report.unwrapped == ("torch.compile",)


def test_a_model_scripted_whole_is_refused_with_the_fix():
    with pytest.raises(InputError, match="(?s)TorchScript module.*pass the nn.Module before scripting"):
        dmt_compile.transform(torch.jit.script(Flat()), "2x2", (_ids(16),))
