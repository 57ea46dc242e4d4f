"""Test helpers: load zoo/example models, compare outputs, train a few steps, check goldens."""
from __future__ import annotations

import importlib.util
import os

import pytest
import torch

import zoo
from conftest import HERE, ROOT, has_torchrec
from dmt_compile.tools.verify import first_tensor  # noqa: F401 - re-exported for the tests
from dmt_compile.ir.shapes import tree_max_abs_diff

EXAMPLES = ("dlrm", "dcn_v2", "deepfm", "attention")
ALL_MODELS = [f"zoo:{n}" for n in zoo.ZOO] + [f"example:{n}" for n in EXAMPLES]


def load_model(key: str, batch_size: int = 8, seed: int = 0):
    kind, name = key.split(":")
    if kind == "zoo":
        if name in zoo.REQUIRES_TORCHREC and not has_torchrec():
            pytest.skip("torchrec is not installed (two-line recipe in the README, TorchRec)")
        return zoo.load(name, batch_size=batch_size, seed=seed)
    path = os.path.join(ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.factory(batch_size=batch_size, seed=seed)


def max_diff(a, b) -> float:
    d = tree_max_abs_diff(a, b)
    assert d is not None, "outputs differ in structure"
    return d


def train_steps(model, inputs, steps: int = 5, lr: float = 0.01) -> list[float]:
    """A few SGD steps on BCE against fixed random labels; returns the losses."""
    torch.manual_seed(0)
    out = first_tensor(model(*inputs))
    labels = (torch.rand(out.shape[0], 1) > 0.5).float()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        logits = first_tensor(model(*inputs)).reshape(-1, 1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def check_golden(name: str, text: str, update: bool) -> None:
    path = os.path.join(HERE, "golden", f"{name}.txt")
    if update:
        with open(path, "w") as fh:
            fh.write(text)
        return
    if not os.path.exists(path):
        pytest.fail(f"missing golden {path}; run pytest --update-golden to create it")
    with open(path) as fh:
        expected = fh.read()
    assert text == expected, f"dump differs from golden {name}.txt; run pytest --update-golden if intended"


def boundary_counts(gm) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in gm.graph.nodes:
        role = n.meta.get("dmt.role")
        if role in ("ids_exchange", "outputs_exchange") and n.op == "call_function" and n.target.__name__ == role:
            counts[role] = counts.get(role, 0) + 1
        if role == "tower_module" and n.op == "call_module":
            counts["tower_module"] = counts.get("tower_module", 0) + 1
    return counts


def labelled_dlrm_batches(n: int) -> list[tuple[tuple, torch.Tensor]]:
    """`[(inputs, labels), ...]` of the example DLRM, batch 32: quality data for the auto strategy's checks."""
    out = []
    for i in range(n):
        _, batch = load_model("example:dlrm", batch_size=32, seed=i + 1)
        labels = (torch.rand(32, generator=torch.Generator().manual_seed(i)) > 0.5).float()
        out.append((batch, labels))
    return out


class FieldPicks(torch.nn.Module):
    """One table per field; field i's ids are `pick(x, i)` (a spelling of a column pick), concatenated, then a
    linear top: the model the column-pick tests trace in each spelling."""

    def __init__(self, pick, fields: int, vocab: int, dim: int):
        super().__init__()
        self.pick = pick
        self.tables = torch.nn.ModuleList(torch.nn.Embedding(vocab, dim) for _ in range(fields))
        self.top = torch.nn.Linear(fields * dim, 1)

    def forward(self, x):
        return self.top(torch.cat([t(self.pick(x, i)) for i, t in enumerate(self.tables)], 1))
