"""Vectorized local training: padding is a no-op, strategies agree, one compile across rounds."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.train.local import LocalTrainSpec, make_batch_train, make_node_train, node_keys


def linear_apply(params, x):
    return x @ params["w"] + params["b"]


def make_data(k=4, m=12, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(k, m, d)).astype(np.float32)
    y = rng.integers(0, c, size=(k, m)).astype(np.int32)
    counts = np.array([12, 7, 3, 9][:k], np.int32)
    params = {
        "w": jnp.asarray(rng.normal(size=(k, d, c)).astype(np.float32)),
        "b": jnp.zeros((k, c), jnp.float32),
    }
    return params, jnp.asarray(x), jnp.asarray(y), jnp.asarray(counts)


def node(tree, i):
    return jax.tree.map(lambda p: p[i], tree)


SPEC = LocalTrainSpec(batch_size=4, local_steps=5, lr=0.1)


def test_padded_examples_change_nothing():
    """Rows past a node's count are never read: garbage there leaves the result bit-identical."""
    params, x, y, counts = make_data()
    train = jax.jit(make_batch_train(linear_apply, SPEC, "vmap"))
    keys = node_keys(jax.random.key(1), 0, jnp.arange(4))
    active = jnp.ones(4, bool)
    ref, _ = train(params, x, y, counts, active, keys)
    pad = jnp.arange(12)[None, :, None] >= counts[:, None, None]
    x2 = jnp.where(pad, 1e6, x)
    y2 = jnp.where(pad[..., 0], 2, y)
    out, _ = train(params, x2, y2, counts, active, keys)
    chex.assert_trees_all_equal(ref, out)


def test_padded_and_inactive_nodes_are_untouched_and_do_not_affect_others():
    params, x, y, counts = make_data()
    train = jax.jit(make_batch_train(linear_apply, SPEC, "vmap"))
    keys = node_keys(jax.random.key(1), 0, jnp.arange(4))
    ref, _ = train(params, x, y, counts, jnp.ones(4, bool), keys)
    counts2 = counts.at[1].set(0)  # a padded node
    active = jnp.array([True, True, False, True])  # slot 2 unused capacity
    out, loss = train(params, x, y, counts2, active, keys)
    for i in (1, 2):
        chex.assert_trees_all_equal(node(out, i), node(params, i))
        assert float(loss[i]) == 0.0
    for i in (0, 3):
        chex.assert_trees_all_equal(node(out, i), node(ref, i))
    # and the trained nodes really moved
    assert not np.allclose(out["w"][0], params["w"][0])


@pytest.mark.parametrize("strategy", ["map", "chunked"])
def test_strategies_match_vmap(strategy):
    params, x, y, counts = make_data()
    keys = node_keys(jax.random.key(3), 2, jnp.arange(4))
    active = jnp.ones(4, bool)
    ref, lref = jax.jit(make_batch_train(linear_apply, SPEC, "vmap"))(
        params, x, y, counts, active, keys
    )
    out, lout = jax.jit(make_batch_train(linear_apply, SPEC, strategy, chunk=3))(
        params, x, y, counts, active, keys
    )
    chex.assert_trees_all_close(ref, out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lref, lout, rtol=1e-6)


@pytest.mark.parametrize("strategy", ["vmap", "map", "chunked:2"])
def test_training_by_node_index_equals_training_on_gathered_shards(strategy):
    """`nodes=`: slot k trains on x[nodes[k]] read a minibatch at a time from all nodes' arrays;
    bit for bit the result of passing the gathered shards x[nodes] (a node may fill two slots;
    an inactive slot and a slot of a node with count 0 keep their input)."""
    params, x, y, counts = make_data()
    nodes = jnp.array([2, 0, 2, 3, 1])
    start = jax.tree.map(lambda p: p[jnp.array([0, 1, 2, 3, 0])], params)
    keys = node_keys(jax.random.key(5), 1, jnp.arange(5))
    c = counts[nodes].at[3].set(0)
    active = jnp.array([True, True, True, True, False])
    train = jax.jit(make_batch_train(linear_apply, SPEC, strategy))
    ref, lref = train(start, x[nodes], y[nodes], c, active, keys)
    out, lout = train(start, x, y, c, active, keys, None, nodes)
    chex.assert_trees_all_equal(out, ref)
    np.testing.assert_array_equal(lout, lref)
    chex.assert_trees_all_equal(node(out, 4), node(start, 4))  # inactive
    chex.assert_trees_all_equal(node(out, 3), node(start, 3))  # count 0
    # slots 0 and 2 train the same node's data from different starts with different keys
    assert not np.allclose(out["w"][0], out["w"][2])


def test_batch_result_equals_single_node_training():
    """Node i's result in the batch equals training node i alone with its own key."""
    params, x, y, counts = make_data()
    keys = node_keys(jax.random.key(3), 2, jnp.arange(4))
    out, _ = jax.jit(make_batch_train(linear_apply, SPEC, "vmap"))(
        params, x, y, counts, jnp.ones(4, bool), keys
    )
    single = jax.jit(make_node_train(linear_apply, SPEC))
    p2, _ = single(node(params, 2), x[2], y[2], counts[2], keys[2])
    chex.assert_trees_all_close(p2, node(out, 2), rtol=1e-6, atol=1e-6)


def test_one_sgd_step_golden():
    """A single full-batch-sized SGD step on a hand-made case equals the analytic update."""
    spec = LocalTrainSpec(batch_size=1, local_steps=1, lr=0.5)
    params = {"w": jnp.zeros((2, 2)), "b": jnp.zeros((2,))}
    x = jnp.array([[1.0, 2.0]])
    y = jnp.array([1])
    new, loss = make_node_train(linear_apply, spec)(params, x, y, jnp.int32(1), jax.random.key(0))
    # logits 0 -> softmax (0.5, 0.5); dL/dlogits = p - onehot = (0.5, -0.5)
    np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(new["w"], -0.5 * np.outer([1.0, 2.0], [0.5, -0.5]), rtol=1e-6)
    np.testing.assert_allclose(new["b"], [-0.25, 0.25], rtol=1e-6)


def test_compiles_once_across_rounds():
    params, x, y, counts = make_data()
    train = make_batch_train(linear_apply, SPEC, "vmap")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def round_fn(params, step):
        keys = node_keys(jax.random.key(0), step, jnp.arange(4))
        return train(params, x, y, counts, jnp.ones(4, bool), keys)

    for r in range(4):
        params, _ = round_fn(params, jnp.int32(r))
