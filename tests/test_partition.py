"""Partition schemes: coverage, padding, skew, determinism, and a golden shards split."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from dl.data import Dataset, NodeData, label_histogram, partition, partition_indices
from dl.errors import ConfigError


def toy(n_per_class: int = 100, classes: int = 10, groups: bool = False) -> Dataset:
    """x[i] = [i, i] so every stored row names its source example; labels in shuffled order."""
    n = n_per_class * classes
    y = np.random.default_rng(1).permutation(np.arange(n) % classes).astype(np.int32)  # [n]
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None], 2, axis=1)  # [n, 2]
    g = (np.arange(n) % 7).astype(np.int32) if groups else None
    return Dataset("toy", x, y, x[:3], y[:3], classes, (2,), g)


def check_consistent(ds: Dataset, nd: NodeData, parts: list[np.ndarray]) -> None:
    """NodeData rows are exactly ds rows at ``parts``, real rows first, padding zero."""
    assert np.array_equal(nd.counts, nd.mask.sum(1))
    assert nd.counts.dtype == np.int32 and nd.mask.dtype == bool
    assert nd.x.shape[:2] == nd.mask.shape == nd.y.shape[:2]
    for k, idx in enumerate(parts):
        c = len(idx)
        assert nd.counts[k] == c and nd.mask[k, :c].all() and not nd.mask[k, c:].any()
        assert np.array_equal(nd.x[k, :c, 0].astype(np.int64), idx)
        assert np.array_equal(nd.y[k, :c], ds.y_train[idx])
        assert not nd.x[k, c:].any() and not nd.y[k, c:].any()


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards", "single_class"])
def test_every_example_used_once(scheme: str) -> None:
    ds = toy()
    parts = partition_indices(ds, 30, scheme, seed=3)
    assert len(parts) == 30 and min(len(p) for p in parts) >= 1
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(ds.num_train))
    nd = partition(ds, 30, scheme, seed=3)
    check_consistent(ds, nd, parts)
    assert np.array_equal(label_histogram(nd, 10).sum(0), np.bincount(ds.y_train))


def test_padding_nodes_are_inert() -> None:
    ds = toy()
    nd = partition(ds, 30, "iid", seed=0, pad_nodes_to=8)
    assert nd.num_nodes == 32 and nd.x.shape == (32, 34, 2)
    assert np.all(nd.counts[30:] == 0) and not nd.mask[30:].any() and not nd.x[30:].any()
    assert nd.counts[:30].sum() == ds.num_train
    assert partition(ds, 32, "iid", seed=0, pad_nodes_to=8).num_nodes == 32


def test_iid_is_balanced() -> None:
    nd = partition(toy(), 30, "iid", seed=0)
    assert set(nd.counts.tolist()) == {33, 34}


def class_share(nd: NodeData) -> np.ndarray:
    """[N] share of each node's examples held by its most common class."""
    h = label_histogram(nd, 10)
    return h.max(1) / h.sum(1)


def test_dirichlet_skew_follows_alpha() -> None:
    ds = toy()
    skewed = partition(ds, 20, "dirichlet", seed=0, alpha=0.05)
    assert class_share(skewed).mean() > 0.6
    uniform = partition(ds, 20, "dirichlet", seed=0, alpha=1e4)
    h = label_histogram(uniform, 10)  # expect 100 / 20 = 5 per class per node
    assert np.abs(h - 5).max() <= 2 and class_share(uniform).mean() < 0.2


def test_dirichlet_tiny_alpha_leaves_no_node_empty() -> None:
    ds = toy(n_per_class=20)
    parts = partition_indices(ds, 150, "dirichlet", seed=0, alpha=1e-3)
    assert min(len(p) for p in parts) >= 1
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(ds.num_train))


def test_single_class_round_robin() -> None:
    ds = toy()
    nd = partition(ds, 25, "single_class", seed=0)
    h = label_histogram(nd, 10)
    assert np.all((h > 0).sum(1) == 1)
    assert np.array_equal(h.argmax(1), np.arange(25) % 10)
    with pytest.raises(ConfigError, match="classes"):
        partition(ds, 5, "single_class", seed=0)


def test_shards_golden() -> None:
    y = np.array([3, 0, 2, 1, 3, 0, 2, 1], np.int32)
    x = np.arange(8, dtype=np.float32)[:, None]
    ds = Dataset("tiny", x, y, x[:1], y[:1], 4, (1,))
    # label-sorted (stable) order 1,5 | 3,7 | 2,6 | 0,4 -> shards 0..3; seed 0 deals [2, 0 | 1, 3]
    parts = partition_indices(ds, 2, "shards", seed=0, shards_per_node=2)
    assert [sorted(p.tolist()) for p in parts] == [[1, 2, 5, 6], [0, 3, 4, 7]]
    parts = partition_indices(ds, 4, "shards", seed=0, shards_per_node=1)
    assert [sorted(p.tolist()) for p in parts] == [[2, 6], [1, 5], [3, 7], [0, 4]]


def test_shards_are_label_runs() -> None:
    nd = partition(toy(), 50, "shards", seed=0, shards_per_node=2)
    assert np.all((label_histogram(nd, 10) > 0).sum(1) <= 2)  # 10-example shards, class-aligned


def test_natural() -> None:
    ds = toy(groups=True)  # 7 groups: 0..5 have 143 examples, 6 has 142
    parts = partition_indices(ds, 7, "natural", seed=0)
    for g, p in enumerate(parts):
        assert np.array_equal(np.sort(p), np.flatnonzero(ds.groups_train == g))
    parts = partition_indices(ds, 5, "natural", seed=0)  # the 5 largest groups
    assert [int(ds.groups_train[p[0]]) for p in parts] == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="7 groups"):
        partition(ds, 8, "natural", seed=0)
    with pytest.raises(ConfigError, match="groups"):
        partition(toy(), 5, "natural", seed=0)


def test_max_examples_caps_rows() -> None:
    ds = toy()
    nd = partition(ds, 10, "dirichlet", seed=0, alpha=0.3, max_examples=40)
    assert nd.x.shape[1] == 40 and nd.counts.max() == 40
    full = partition_indices(ds, 10, "dirichlet", seed=0, alpha=0.3)
    capped = partition_indices(ds, 10, "dirichlet", seed=0, alpha=0.3, max_examples=40)
    for f, c in zip(full, capped, strict=True):
        assert np.array_equal(c, f[:40])


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards", "single_class"])
def test_deterministic_in_seed(scheme: str) -> None:
    ds = toy()
    a, b = (partition(ds, 20, scheme, seed=7) for _ in range(2))
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.array_equal(la, lb)
    c = partition(ds, 20, scheme, seed=8)
    assert not np.array_equal(a.x, c.x)


def test_errors() -> None:
    ds = toy(n_per_class=2)
    with pytest.raises(ConfigError, match="exceeds"):
        partition(ds, 21, "iid", seed=0)
    with pytest.raises(ConfigError, match="iid, dirichlet, shards, natural, single_class"):
        partition(ds, 2, "random", seed=0)
    with pytest.raises(ConfigError, match="alpha"):
        partition(ds, 2, "dirichlet", seed=0, alpha=0.0)
    with pytest.raises(ConfigError, match="shards"):
        partition(ds, 5, "shards", seed=0, shards_per_node=5)


def test_sequence_targets() -> None:
    x = np.arange(60, dtype=np.int32).reshape(12, 5)
    ds = Dataset("seq", x, x + 1, x[:2], x[:2] + 1, 65, (5,), np.arange(12, dtype=np.int32) % 3)
    nd = partition(ds, 3, "natural", seed=0, pad_nodes_to=2)
    assert nd.y.shape == (4, 4, 5) and nd.counts.tolist() == [4, 4, 4, 0]
    assert label_histogram(nd, 65).sum() == 12 * 5
    with pytest.raises(ConfigError, match="sequence"):
        partition(ds, 3, "dirichlet", seed=0)
    assert len(jax.tree.leaves(nd)) == 4  # a pytree of the four arrays
