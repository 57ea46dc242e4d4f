"""AUC, log-loss and adjusted Rand index against brute force and known values."""
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.quality.metrics import adjusted_rand_index, auc, log_loss


def _auc_brute(y, s):
    pos = [a for a, l in zip(s, y) if l]
    neg = [a for a, l in zip(s, y) if not l]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_auc_matches_pairwise_count_with_ties(rows):
    y = [int(a) for a, _ in rows]
    s = [float(b) for _, b in rows]
    expected = 0.5 if len(set(y)) < 2 else _auc_brute(y, s)
    assert auc(torch.tensor(y), torch.tensor(s)) == pytest.approx(expected)


def test_log_loss_matches_formula():
    y = torch.tensor([1.0, 0.0, 1.0])
    z = torch.tensor([2.0, -1.0, 0.0])
    p = torch.sigmoid(z)
    expected = float(-(y * p.log() + (1 - y) * (1 - p).log()).mean())
    assert log_loss(y, z) == pytest.approx(expected)


def test_adjusted_rand_index_known_values():
    assert adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(0.5714285714285715)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        adjusted_rand_index([0], [0, 1])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=2, max_size=20), st.permutations(range(4)))
def test_ari_is_label_permutation_invariant(labels, perm):
    assert adjusted_rand_index(labels, [perm[x] for x in labels]) == pytest.approx(1.0)
