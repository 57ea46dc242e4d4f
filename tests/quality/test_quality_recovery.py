"""Learned towers recover planted feature groups on a small instance (CI time); baselines do not."""
import pytest
import torch

from benchmarks.quality import TrainConfig, make_planted, plan_baselines


@pytest.fixture(scope="module")
def rows():
    torch.manual_seed(0)
    data = make_planted(4000, num_groups=3, group_size=3, cardinality=20, rank=4, clusters=5, seed=1)
    cfg = TrainConfig(epochs=1, pretrain_epochs=1, batch_size=256, dim=8, topology="3x1", num_towers=3,
                      calibration=4, progress=False)
    return {r["partitioner"]: r for r in plan_baselines(data, 0, cfg)}


def test_learned_towers_recover_planted_groups(rows):
    assert rows["learned"]["ari"] >= 0.9
    assert rows["learned"]["balance"] == pytest.approx(1.0)


def test_baselines_side_by_side(rows):
    assert set(rows) == {"learned", "balanced", "random", "contiguous"}
    for name in ("balanced", "random", "contiguous"):
        assert rows[name]["ari"] < rows["learned"]["ari"]
        assert rows[name]["affinity_captured"] < rows["learned"]["affinity_captured"]


def test_planted_generator_is_deterministic_and_grouped():
    a = make_planted(500, num_groups=2, group_size=3, seed=4)
    b = make_planted(500, num_groups=2, group_size=3, seed=4)
    assert torch.equal(a.sparse, b.sparse) and torch.equal(a.labels, b.labels)
    assert sorted(f for g in a.groups for f in g) == list(a.feature_names)
    assert 0.3 < float(a.labels.mean()) < 0.7


def test_shared_latent_zero_draws_the_same_data_and_bad_share_is_refused():
    from dmt_compile.errors import InputError

    a = make_planted(300, num_groups=2, group_size=2, seed=3)
    b = make_planted(300, num_groups=2, group_size=2, seed=3, shared_latent=0.0)
    assert torch.equal(a.sparse, b.sparse) and torch.equal(a.labels, b.labels)
    with pytest.raises(InputError, match="shared_latent must be in"):
        make_planted(300, shared_latent=1.5)

