"""`sim.eval_node_examples` (issue 16: evaluation cost): node models are evaluated on a fixed,
seeded sample of the test set; 0 or the whole size means the whole test set."""

import jax.numpy as jnp
import numpy as np
import pytest

from dl.train.evaluate import make_evaluate, make_sample_evaluate, sample_indices


def apply(p, x):
    """Logits of class 1 = x[:, 0] * p: predicts 1 where x > 0 (p > 0)."""
    return jnp.stack([jnp.zeros_like(x[:, 0]), x[:, 0] * p], 1)


X = np.array([[1.0], [1.0], [-1.0], [-1.0], [1.0], [-1.0]], np.float32)
Y = np.array([1, 1, 1, 0, 0, 0], np.int32)  # correct for p = 1: rows 0, 1, 3, 5 -> 4 of 6


def test_whole_test_set_when_zero_or_larger():
    full = make_evaluate(apply, X, Y, batch=4)(jnp.float32(1.0))
    assert float(full[0]) == pytest.approx(4 / 6)
    for k in (0, 6, 100):
        got = make_sample_evaluate(apply, X, Y, 4, k, seed=0)(jnp.float32(1.0))
        np.testing.assert_array_equal(got, full)


def test_a_sample_is_the_documented_rows_and_fixed_per_seed():
    idx = sample_indices(6, 3, seed=5)
    assert len(set(idx.tolist())) == 3 and idx.max() < 6
    acc, _ = make_sample_evaluate(apply, X, Y, 2, 3, seed=5)(jnp.float32(1.0))
    # by hand: the accuracy is the share of the sampled rows among the correct ones {0, 1, 3, 5}
    want = np.isin(idx, [0, 1, 3, 5]).mean()
    assert float(acc) == pytest.approx(want)
    np.testing.assert_array_equal(sample_indices(6, 3, seed=5), idx)  # same rows every time
    assert any((sample_indices(6, 3, seed=s) != idx).any() for s in range(6, 12))


def test_consensus_distance_by_hand_and_blockwise(monkeypatch):
    import dl.train.evaluate as ev

    # three nodes x = 0, 1, 2 (plus a padding row 9 that must not count): mean 1,
    # distance (1 + 0 + 1) / 3 = 2 / 3
    stacked = {"w": jnp.array([[0.0], [1.0], [2.0], [9.0]])}
    assert float(ev.consensus_distance(stacked, 3)) == pytest.approx(2 / 3)
    # blocks of one node (3 passes) and of two (the last block overlaps, masked)
    r = np.random.default_rng(0)
    big = {"a": jnp.asarray(r.normal(size=(7, 3, 2)), jnp.float32), "b": jnp.ones((7, 4))}
    dense = float(ev.consensus_distance(big, 7))
    for limit in (8 * 10, 8 * 20):  # row = 10 floats: b = 1, then b = 2
        monkeypatch.setattr(ev, "DENSE_BYTES", limit)
        assert float(ev.consensus_distance(big, 7)) == pytest.approx(dense, rel=1e-5)
        assert float(ev.consensus_distance(stacked, 3)) == pytest.approx(2 / 3)
