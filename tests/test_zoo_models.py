"""Sanity tests for the model zoo (tests/zoo) and the example models (examples/)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.fx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = ["dlrm", "dcn_v2", "deepfm", "attention"]


def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"_dmt_example_{name}", EXAMPLES_DIR / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.factory


def _factory(kind, name):
    if kind == "example":
        return _load_example(name)
    if name in zoo.REQUIRES_TORCHREC:
        pytest.importorskip("torchrec", reason=f"zoo entry {name!r} needs torchrec")
    return lambda batch_size=8, seed=0: zoo.load(name, batch_size=batch_size, seed=seed)


def _tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    raise TypeError(f"unexpected output type {type(out)}")


CASES = [("zoo", n) for n in zoo.ZOO] + [("example", n) for n in EXAMPLES]
IDS = [f"{k}:{n}" for k, n in CASES]


def test_zoo_registry():
    assert len(zoo.ZOO) >= 14
    for name, mod in zoo.ZOO.items():
        assert (Path(zoo.__file__).parent / f"{mod}.py").is_file(), name
    for table in (zoo.REQUIRES_TORCHREC, zoo.NOT_FX_TRACEABLE, zoo.SUBMODULE_IDIOMS, zoo.OUTPUT_KIND):
        assert set(table) <= set(zoo.ZOO)
    for name in zoo.ZOO:
        if name not in zoo.REQUIRES_TORCHREC:
            assert zoo.module(name).__doc__, f"{name} needs a docstring"


@pytest.mark.parametrize("kind,name", CASES, ids=IDS)
def test_runs_at_two_batch_sizes(kind, name):
    factory = _factory(kind, name)
    for batch_size in (8, 5):
        model, inputs = factory(batch_size=batch_size, seed=0)
        assert isinstance(model, torch.nn.Module) and isinstance(inputs, tuple)
        with torch.no_grad():
            out = model(*inputs)
        kind_out = zoo.OUTPUT_KIND.get(name, "tensor") if kind == "zoo" else "tensor"
        if kind_out == "dict":
            assert set(out) == {"logit", "prob"}
        elif kind_out == "tuple":
            assert isinstance(out, tuple) and len(out) == 2
        else:
            assert isinstance(out, torch.Tensor)
        tensors = _tensors(out)
        assert tensors[0].shape == (batch_size, 1)
        for t in tensors:
            assert t.shape[0] == batch_size
            assert torch.isfinite(t).all()


@pytest.mark.parametrize("kind,name", CASES, ids=IDS)
def test_deterministic_for_seed(kind, name):
    factory = _factory(kind, name)
    m1, in1 = factory(batch_size=5, seed=3)
    m2, in2 = factory(batch_size=5, seed=3)
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert s1.keys() == s2.keys()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    with torch.no_grad():
        o1, o2 = _tensors(m1(*in1)), _tensors(m2(*in2))
    assert all(torch.equal(a, b) for a, b in zip(o1, o2))
    m3, _ = factory(batch_size=5, seed=4)
    s3 = m3.state_dict()
    assert any(not torch.equal(s1[k], s3[k]) for k in s1 if s1[k].is_floating_point())


@pytest.mark.parametrize("kind,name", CASES, ids=IDS)
def test_fx_traceability(kind, name):
    model, inputs = _factory(kind, name)(batch_size=5, seed=0)
    if kind == "zoo" and name in zoo.NOT_FX_TRACEABLE:
        _, exc = zoo.NOT_FX_TRACEABLE[name]
        with pytest.raises(exc):
            torch.fx.symbolic_trace(model)
        if name in zoo.SUBMODULE_IDIOMS:  # the submodule breaks tracing on its own too
            with pytest.raises(Exception):
                torch.fx.symbolic_trace(getattr(model, zoo.SUBMODULE_IDIOMS[name]))
        return
    gm = torch.fx.symbolic_trace(model)
    model.eval(), gm.eval()
    with torch.no_grad():
        for a, b in zip(_tensors(model(*inputs)), _tensors(gm(*inputs))):
            torch.testing.assert_close(a, b)
