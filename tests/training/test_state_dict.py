"""DmtModel state under the original names, flat_state_dict, and torch.save / torch.load round trips.

Every model of tests/zoo and examples/, with the identity Tower Module and (where the model
allows compression) a compressing one.
"""
from __future__ import annotations

import copy
import io
import os

import pytest
import torch

import dmt_compile
from conftest import ROOT
from dmt_compile.api import DmtModel
from dmt_compile.capture.model_spec import load_model_spec
from dmt_compile.errors import CheckpointError
from dmt_compile.ir.graph import tower_nodes
from dmt_compile.model.state_names import OriginalState
from helpers import ALL_MODELS, load_model, max_diff, train_steps

UNPOOLED = {"zoo:torchrec_ec_sequence"}  # unpooled sequences: identity towers only
CASES = [(m, "identity") for m in ALL_MODELS] + [(m, "linear") for m in ALL_MODELS if m not in UNPOOLED]


def _load(key: str):
    if key.startswith("example:"):  # through MODEL_SPEC, so its classes are importable for pickle
        return load_model_spec(os.path.join(ROOT, "examples", key.split(":")[1] + ".py") + ":factory")
    return load_model(key)


def _transform(key: str, tm: str):
    model, inputs = _load(key)
    torch.manual_seed(0)
    return model, inputs, dmt_compile.transform(model, "2x2", inputs, tower_module=tm)


def _equal_state(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    bad = [k for k in a if a[k].dtype != b[k].dtype or not torch.equal(a[k], b[k])]
    assert not bad, f"tensors differ: {bad}"


@pytest.mark.parametrize("key,tm", CASES, ids=[f"{m}-{t}" for m, t in CASES])
def test_state_dict_uses_original_names_and_round_trips(key, tm):
    model, inputs, dmt = _transform(key, tm)
    original = model.state_dict()
    state = dmt.state_dict()
    added = [k for k in state if k not in original]
    assert list(state)[:len(original)] == list(original)  # every original name, in the original order
    assert all(k.startswith("dmt.") for k in added)
    if tm == "identity":
        assert not added  # nothing added: the flat model loads it as it is, and back
        copy.deepcopy(model).load_state_dict(state)
    if added:  # the trained function needs the added modules: no silent flat conversion
        with pytest.raises(CheckpointError, match="modules the compiler added .*dmt\\.tower"):
            dmt_compile.flat_state_dict(dmt)
    flat_sd = dmt_compile.flat_state_dict(dmt, strict=not added)
    _equal_state(flat_sd, original)  # bitwise: the rewrite kept every original layer
    flat = copy.deepcopy(model)
    flat.load_state_dict(flat_sd, strict=True)
    dmt.load_state_dict(state, strict=True)

    buf = io.BytesIO()
    torch.save(dmt, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    _equal_state(loaded.state_dict(), state)
    assert loaded.graph_module.code == dmt.graph_module.code
    assert loaded.dump("table") == dmt.dump("table")  # plan, roles and towers survive
    assert sorted(tower_nodes(loaded.graph_module.graph)) == sorted(tower_nodes(dmt.graph_module.graph))
    dmt.eval()
    loaded.eval()
    with torch.no_grad():
        assert max_diff(dmt(*inputs), loaded(*inputs)) == 0


def test_trained_identity_model_loads_into_the_flat_model_exactly():
    model, inputs, dmt = _transform("example:dlrm", "identity")
    train_steps(dmt, inputs, steps=3, lr=0.1)
    flat = copy.deepcopy(model)
    flat.load_state_dict(dmt_compile.flat_state_dict(dmt))
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, flat.state_dict()[k])]
    assert changed  # training moved the parameters
    flat.eval()
    dmt.eval()
    with torch.no_grad():
        assert max_diff(flat(*inputs), dmt(*inputs)) == 0
    # and back: a fresh transform takes the trained flat state under the same names
    fresh = dmt_compile.transform(model, "2x2", inputs)
    fresh.load_state_dict(flat.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert max_diff(fresh(*inputs), dmt(*inputs)) == 0


def test_unused_parameter_is_kept_beside_the_graph():
    model, inputs, dmt = _transform("zoo:shared_fibinet", "identity")
    assert dmt.state_names.held == ("bilinear.bilinear_W_list.5.weight",)
    assert torch.equal(dmt.state_dict()["bilinear.bilinear_W_list.5.weight"],
                       model.state_dict()["bilinear.bilinear_W_list.5.weight"])


def test_folded_buffer_refuses_a_different_value():
    model, inputs, dmt = _transform("zoo:xdeepfm_offsets_buffer", "identity")
    assert "embedding.offsets" in dmt.state_names.held_buffers
    state = dmt.state_dict()
    dmt.load_state_dict(state)  # the same value is fine
    state = dict(state)
    state["embedding.offsets"] = state["embedding.offsets"] + 1
    with pytest.raises(CheckpointError, match="embedding.offsets.*folded into the graph"):
        dmt.load_state_dict(state)


def test_missing_and_unexpected_keys_are_named_with_original_names():
    model, inputs, dmt = _transform("example:dlrm", "identity")
    state = dict(dmt.state_dict())
    del state["embeddings.C1.weight"]
    state["not.a.key"] = torch.zeros(1)
    result = dmt.load_state_dict(state, strict=False)
    assert result.missing_keys == ["embeddings.C1.weight"]
    assert result.unexpected_keys == ["not.a.key"]
    with pytest.raises(RuntimeError, match="embeddings.C1.weight"):
        dmt.load_state_dict(state)


def test_nested_dmt_model_keeps_the_prefix():
    model, inputs, dmt = _transform("example:dlrm", "linear")
    outer = torch.nn.Module()
    outer.net = dmt
    state = outer.state_dict()
    assert "net.embeddings.C1.weight" in state and "net.dmt.tower0_tm.core.proj.weight" in state
    other = copy.deepcopy(outer)
    for p in other.parameters():
        p.data.zero_()
    other.load_state_dict(state)
    _equal_state(other.state_dict(), state)


def _rebuilt_model():
    """A DmtModel whose top MLP's first layer the 'rewrite' replaced by a wider one."""
    model, inputs = load_model("example:dlrm")
    work = copy.deepcopy(model)
    originals = OriginalState(work)
    originals.captured = {id(t) for t in work.state_dict(keep_vars=True).values()}
    dmt = dmt_compile.transform(work, "2x2", inputs, inplace=True)
    top = dmt.graph_module.get_submodule("top_mlp")  # fx's container of the traced sub-modules
    old = top.get_submodule("0")
    top.add_module("0", torch.nn.Linear(old.in_features + 4, old.out_features))
    return model, DmtModel(dmt.graph_module, dmt.input_spec, dmt.plan, dmt.detection, dmt.capture_report,
                           dmt.topology, originals)


def test_rebuilt_layer_has_no_flat_counterpart():
    model, dmt = _rebuilt_model()
    assert dmt.state_names.rebuilt == ("top_mlp.0.weight", "top_mlp.0.bias")
    assert "dmt.top_mlp.0.weight" in dmt.state_dict()
    with pytest.raises(CheckpointError, match=r"(?s)rebuilt layer\(s\) top_mlp\.0 .*strict=False"):
        dmt_compile.flat_state_dict(dmt)
    partial = dmt_compile.flat_state_dict(dmt, strict=False)
    assert set(model.state_dict()) - set(partial) == {"top_mlp.0.weight", "top_mlp.0.bias"}
    result = copy.deepcopy(model).load_state_dict(partial, strict=False)
    assert sorted(result.missing_keys) == ["top_mlp.0.bias", "top_mlp.0.weight"]
    with pytest.raises(CheckpointError, match="rebuilt"):
        dmt.load_state_dict(model.state_dict())
    dmt.load_state_dict(model.state_dict(), strict=False)


def test_state_of_other_shapes_is_a_typed_error_naming_the_tensor():
    _, _, dmt_c4 = _transform("example:dlrm", "linear")
    state = dict(dmt_c4.state_dict())
    key = next(k for k, v in state.items() if k.startswith("dmt.") and v.dim() == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    with pytest.raises(CheckpointError, match=r"other shapes.*size mismatch for .*other settings"):
        dmt_c4.load_state_dict(state)
