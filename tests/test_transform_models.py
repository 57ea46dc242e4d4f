"""Every zoo and example model: identity TM is exact, linear TM trains, boundaries are explicit."""
from __future__ import annotations

import pytest
import torch

import dmt_compile
from helpers import ALL_MODELS, boundary_counts, load_model, max_diff, train_steps


@pytest.mark.parametrize("key", ALL_MODELS)
def test_identity_tm_matches_original(key):
    model, inputs = load_model(key)
    model.eval()
    reference = model(*inputs)
    dmt = dmt_compile.transform(model, "2x4", inputs, tower_module="identity")
    dmt.eval()
    assert max_diff(dmt(*inputs), reference) <= 1e-5
    # another batch size than the example's
    _, inputs5 = load_model(key, batch_size=5, seed=1)
    assert max_diff(dmt(*inputs5), model(*inputs5)) <= 1e-5
    # the original model is not modified by transform
    assert max_diff(model(*inputs), reference) == 0.0


@pytest.mark.parametrize("key", ALL_MODELS)
def test_boundaries_are_explicit_nodes(key):
    model, inputs = load_model(key)
    dmt = dmt_compile.transform(model, "2x2", inputs)
    towers = dmt.plan.num_towers
    assert boundary_counts(dmt.graph_module) == {
        "ids_exchange": towers, "outputs_exchange": towers, "tower_module": towers,
    }
    features = [f for t in dmt.plan.towers for f in t]
    assert sorted(features) == sorted(dmt.detection.features)
    assert len(features) == len(set(features))


UNCOMPRESSIBLE = {"zoo:torchrec_ec_sequence"}  # unpooled sequence embeddings


@pytest.mark.parametrize("key", sorted(UNCOMPRESSIBLE))
def test_unpooled_sequences_refuse_compression(key):
    from dmt_compile.errors import TowerModuleError

    model, inputs = load_model(key)
    with pytest.raises(TowerModuleError, match="unpooled sequences"):
        dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)


@pytest.mark.parametrize("key", [k for k in ALL_MODELS if k not in UNCOMPRESSIBLE])
def test_linear_tm_compresses_and_trains(key):
    model, inputs = load_model(key)
    torch.manual_seed(0)
    dmt = dmt_compile.transform(model, "2x2", inputs, tower_module="linear", compression=4)
    for d in dmt.plan.details:
        assert d.feed in ("direct", "hierarchical", "decoder")
        assert d.width_out < d.width_in or d.width_in < 4
    dmt.train()
    losses = train_steps(dmt, inputs, steps=8)
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
