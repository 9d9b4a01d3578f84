"""FedAvg in virtual time on hand-made nodes: FedScale round timing, weighted averaging, server
optimizers, byte counts, stragglers that go offline, and one compile for many chunks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl.algorithms.fedavg import FedAvgSpec, init_fedavg, make_fedavg_chunk
from dl.engine.rounds import NodeEnv
from dl.rules.server_opt import ServerOptSpec
from dl.train.local import LocalTrainSpec, make_node_train, node_keys

N, M, D, C = 6, 8, 4, 3
TRAIN = LocalTrainSpec(batch_size=4, local_steps=3, lr=0.2)


def linear_apply(params, x):
    return x @ params["w"] + params["b"]


def make_env(t_client, online_until=None):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N, M, D)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, C, size=(N, M)).astype(np.int32))
    counts = jnp.asarray(np.array([8, 5, 3, 8, 2, 6], np.int32))
    ones = lambda *a: jnp.ones((N,), bool)  # noqa: E731
    return NodeEnv(x, y, counts, jnp.asarray(t_client, jnp.float32), ones, online_until or ones)


PARAMS = {"w": jnp.full((D, C), 0.1, jnp.float32), "b": jnp.zeros((C,), jnp.float32)}
T_CLIENT = [5.0, 1.0, 3.0, 2.0, 9.0, 4.0]


def run_one_round(spec, env, key=jax.random.key(0)):
    chunk = make_fedavg_chunk(linear_apply, TRAIN, spec, env, model_bytes=1000, strategy="vmap")
    state = init_fedavg(PARAMS, spec)
    return chunk(state, key, jnp.float32(1e9), jnp.int32(1)), chunk


def expected_average(env, chosen, key=jax.random.key(0)):
    """Count-weighted mean of the chosen nodes' locally trained models, computed node by node."""
    node_train = make_node_train(linear_apply, TRAIN)
    rkey = jax.random.fold_in(key, 0)
    keys = node_keys(jax.random.fold_in(rkey, 1), jnp.int32(0), jnp.asarray(chosen))
    models = [
        node_train(PARAMS, env.x[i], env.y[i], env.counts[i], keys[j])[0]
        for j, i in enumerate(chosen)
    ]
    w = np.array([int(env.counts[i]) for i in chosen], np.float32)
    return jax.tree.map(lambda *ps: sum(wi * p for wi, p in zip(w, ps)) / w.sum(), *models)


def test_round_lasts_until_kth_fastest_and_averages_them():
    # overcommit 3.0 with K=2 samples all 6 nodes; the 2 fastest are nodes 1 (1 s) and 3 (2 s).
    spec = FedAvgSpec(clients_per_round=2, overcommit=3.0)
    env = make_env(T_CLIENT)
    state, _ = run_one_round(spec, env)
    assert float(state.clock) == 2.0
    assert int(state.round) == 1 and int(state.clients) == 2
    assert float(state.bytes_up) == 2 * 1000 and float(state.bytes_down) == 6 * 1000
    chex.assert_trees_all_close(state.params, expected_average(env, [1, 3]), rtol=1e-5, atol=1e-6)


def test_node_that_would_go_offline_is_dropped():
    # node 1 (the fastest) will not stay online until it finishes: nodes 3 and 2 are kept instead.
    until = lambda t0, t1: jnp.arange(N) != 1  # noqa: E731
    spec = FedAvgSpec(clients_per_round=2, overcommit=3.0)
    env = make_env(T_CLIENT, until)
    state, _ = run_one_round(spec, env)
    assert float(state.clock) == 3.0
    assert float(state.bytes_down) == 5 * 1000
    chex.assert_trees_all_close(state.params, expected_average(env, [3, 2]), rtol=1e-5, atol=1e-6)


def test_server_momentum_is_optax_on_pseudo_gradient():
    opt = ServerOptSpec(name="momentum", lr=0.7, momentum=0.9)
    spec = FedAvgSpec(clients_per_round=2, overcommit=3.0, server_opt=opt)
    env = make_env(T_CLIENT)
    state, _ = run_one_round(spec, env)
    avg = expected_average(env, [1, 3])
    tx = optax.sgd(0.7, momentum=0.9)
    grad = jax.tree.map(lambda p, a: p - a, PARAMS, avg)
    upd, _ = tx.update(grad, tx.init(PARAMS), PARAMS)
    chex.assert_trees_all_close(
        state.params, optax.apply_updates(PARAMS, upd), rtol=1e-5, atol=1e-6
    )


def test_chunks_stop_at_virtual_time_and_compile_once():
    spec = FedAvgSpec(clients_per_round=2, overcommit=1.0)
    env = make_env(T_CLIENT)
    chunk = make_fedavg_chunk(linear_apply, TRAIN, spec, env, model_bytes=10, strategy="vmap")
    state = init_fedavg(PARAMS, spec)
    key = jax.random.key(1)
    for target in (10.0, 20.0, 30.0):
        state = chunk(state, key, jnp.float32(target), jnp.int32(10**6))
        assert float(state.clock) >= target
    assert chunk._cache_size() == 1
    # sampling K of N at random: every round lasts max(t_client) of two random nodes <= 9 s
    assert float(state.clock) < 30.0 + 9.0
    assert int(state.round) >= 30 // 9


def test_fedavg_is_deterministic_in_key():
    spec = FedAvgSpec(clients_per_round=3, overcommit=1.3)
    env = make_env(T_CLIENT)
    a, _ = run_one_round(spec, env, jax.random.key(5))
    b, _ = run_one_round(spec, env, jax.random.key(5))
    chex.assert_trees_all_equal(a, b)


def test_upload_compression_averages_each_coordinate_over_its_senders():
    spec = FedAvgSpec(clients_per_round=2, overcommit=3.0, upload_frac=0.5)
    env = make_env(T_CLIENT)
    state, _ = run_one_round(spec, env)
    assert float(state.bytes_up) == 2 * 1000 * 0.5
    # every coordinate is either untouched, one client's model, or the two clients' average
    full, _ = run_one_round(FedAvgSpec(clients_per_round=2, overcommit=3.0), env)
    node_train = make_node_train(linear_apply, TRAIN)
    rkey = jax.random.fold_in(jax.random.key(0), 0)
    keys = node_keys(jax.random.fold_in(rkey, 1), jnp.int32(0), jnp.asarray([1, 3]))
    m1 = node_train(PARAMS, env.x[1], env.y[1], env.counts[1], keys[0])[0]
    m3 = node_train(PARAMS, env.x[3], env.y[3], env.counts[3], keys[1])[0]
    for leaf in ("w", "b"):
        got = np.asarray(state.params[leaf]).ravel()
        options = np.stack([np.asarray(a[leaf]).ravel() for a in (PARAMS, m1, m3, full.params)])
        assert np.all(np.isclose(got[None], options, rtol=1e-5, atol=1e-6).any(0))
