"""The event-accurate clock for async FL on hand-made nodes and traces (system and training)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async, make_async_chunk
from dl.engine.async_server import AsyncServerSpec
from dl.traces.availability import from_transitions

D, C_OUT, M = 3, 2, 6
TRAIN_SPEC = dict(batch_size=2, local_steps=2, lr=0.3)
PARAMS = {"w": jnp.full((D, C_OUT), 0.2, jnp.float32), "b": jnp.zeros((C_OUT,), jnp.float32)}


def linear_apply(params, x):
    return x @ params["w"] + params["b"]


def availability(n, offline_at=None):
    """All nodes online from 0; optional {node: time} at which a node goes offline for good."""
    offline_at = offline_at or {}
    node = np.array(sorted(offline_at), np.int64)
    times = np.array([offline_at[i] for i in sorted(offline_at)], np.float32)
    return from_transitions(node, times, np.ones(n, bool), n)


def make_env(n=4, t_comp=10.0, offline_at=None, server=None):
    from dl.devices.server import build_server

    rng = np.random.default_rng(0)
    f = lambda v: jnp.full((n,), v, jnp.float32)  # noqa: E731
    return AsyncEnv(
        x=jnp.asarray(rng.normal(size=(n, M, D)).astype(np.float32)),
        y=jnp.asarray(rng.integers(0, C_OUT, size=(n, M)).astype(np.int32)),
        counts=jnp.full((n,), M, jnp.int32),
        t_down=f(1.0),
        t_comp=jnp.broadcast_to(jnp.asarray(t_comp, jnp.float32), (n,)),
        t_up=f(1.0),
        power_w=f(2.0),
        e_down_j=f(0.5),
        e_up_j=f(0.25),
        nodes=availability(n, offline_at),
        server=build_server(server or {"kind": "always"}, 1e6, 0),
    )


def run(env, spec, eng, t_stop, params=PARAMS):
    from dl.train.local import LocalTrainSpec

    chunk = make_async_chunk(
        linear_apply, LocalTrainSpec(**TRAIN_SPEC), spec, eng, env, model_bytes=100, strategy="vmap"
    )
    st = init_async(params, spec, eng, int(env.counts.shape[0]))
    return chunk(st, jax.random.key(0), jnp.float32(t_stop)), chunk


def test_timing_of_one_session_and_counters():
    # 1 node, q = 1 s: dispatched at t = 1, due at 1 + 1 + 10 + 1 = 13, processed in [13, 14)
    env = make_env(n=1)
    eng = EngineSpec(quantum_s=1.0, concurrency=1, max_arrivals=1)
    st, _ = run(env, AsyncServerSpec(kind="fedasync", staleness="constant"), eng, 13.0)
    assert int(st.server.applied) == 0 and float(st.slots.finish[0]) == 13.0
    st, _ = run(env, AsyncServerSpec(kind="fedasync", staleness="constant"), eng, 14.0)
    assert int(st.server.applied) == 1 and int(st.server.version) == 1
    c = {k: float(v) for k, v in st.counters.items()}
    assert c["dispatched"] == 2 and c["arrivals"] == 1  # re-dispatched at t = 14
    assert c["bytes_down"] == 200 and c["bytes_up"] == 100
    assert c["energy_compute_j"] == 2.0 * 10.0
    assert c["energy_radio_j"] == 2 * 0.5 + 0.25 and c["energy_wasted_j"] == 0.0


def test_node_that_goes_offline_mid_training_contributes_nothing():
    # node 0 goes offline at t = 6, in the middle of its training (1 s download, then 10 s)
    env = make_env(n=1, offline_at={0: 6.0})
    eng = EngineSpec(quantum_s=1.0, concurrency=1, max_arrivals=1)
    st, _ = run(env, AsyncServerSpec(kind="fedasync"), eng, 50.0)
    chex.assert_trees_all_equal(st.server.params, PARAMS)
    c = {k: float(v) for k, v in st.counters.items()}
    assert c["updates_lost"] == 1 and c["arrivals"] == 1 and c["bytes_up"] == 0
    assert c["energy_compute_j"] == pytest.approx(2.0 * 4.0)  # ran from t = 2 to t = 6
    assert c["energy_wasted_j"] == pytest.approx(2.0 * 4.0 + 0.5)
    assert c["dispatched"] == 1  # offline nodes are never dispatched again


def test_fedbuff_k1_lr_alpha_equals_fedasync_constant():
    env = make_env(n=3)
    eng = EngineSpec(quantum_s=1.0, concurrency=1, max_arrivals=1)  # staleness always 0
    a, _ = run(env, AsyncServerSpec(kind="fedasync", alpha=0.4, staleness="constant"), eng, 200.0)
    b, _ = run(env, AsyncServerSpec(kind="fedbuff", buffer_k=1, server_lr=0.4), eng, 200.0)
    assert int(a.server.version) == int(b.server.version) > 10
    chex.assert_trees_all_close(a.server.params, b.server.params, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["fedasync", "fedbuff"])
def test_arrivals_in_one_quantum_equal_one_per_quantum(kind):
    # 4 nodes dispatched together at t = 1 from the same server model. With equal t_comp all
    # are due at t = 13 (one quantum); with t_comp 10, 11, 12, 13 they arrive one per quantum in
    # the same (time, node id) order. Training depends only on (start model, data, dispatch
    # quantum, node id), so the server must end bit-identical.
    spec = AsyncServerSpec(kind=kind, buffer_k=2, staleness="poly")
    eng = EngineSpec(1.0, concurrency=4, max_arrivals=4)
    together, _ = run(make_env(n=4, t_comp=10.0), spec, eng, 14.0)
    apart, _ = run(make_env(n=4, t_comp=[10.0, 11.0, 12.0, 13.0]), spec, eng, 17.0)
    assert int(together.server.applied) == int(apart.server.applied) == 4
    chex.assert_trees_all_equal(together.server.params, apart.server.params)
    chex.assert_trees_all_equal(together.server.hist, apart.server.hist)
    assert int(together.server.version) == int(apart.server.version)


def test_arrivals_over_capacity_are_deferred_not_dropped():
    env = make_env(n=4)
    spec = AsyncServerSpec(kind="fedasync", staleness="poly")
    together, _ = run(env, spec, EngineSpec(1.0, concurrency=4, max_arrivals=4), 14.0)
    apart, _ = run(env, spec, EngineSpec(1.0, concurrency=4, max_arrivals=1), 17.0)
    assert int(apart.server.applied) == 4 and int(apart.server.version) == 4
    assert float(apart.counters["arrivals_deferred"]) == 3 + 2 + 1
    # same updates in the same order; a 1-step scan may fuse (1 - a) x + a y differently
    chex.assert_trees_all_close(together.server.params, apart.server.params, rtol=1e-6)


def test_system_only_mode_matches_counters():
    env = make_env(n=4, offline_at={2: 30.0})
    spec = AsyncServerSpec(kind="fedbuff", buffer_k=2)
    a, _ = run(env, spec, EngineSpec(1.0, concurrency=3, max_arrivals=2), 120.0)
    b, _ = run(env, spec, EngineSpec(1.0, concurrency=3, max_arrivals=2, train=False), 120.0)
    for k in a.counters:
        assert float(a.counters[k]) == float(b.counters[k]), k
    assert int(a.server.applied) == int(b.server.applied)
    chex.assert_trees_all_equal(b.server.params, PARAMS)


def test_server_down_blocks_progress_and_uploads_are_lost_or_retried():
    outage = {"kind": "intervals", "outages": [[5.0, 40.0]]}
    env = make_env(n=2, server=outage)
    spec = AsyncServerSpec(kind="fedasync")
    lost, _ = run(env, spec, EngineSpec(1.0, concurrency=2, upload_policy="lost"), 30.0)
    assert float(lost.counters["uploads_server_down"]) == 2 and int(lost.server.applied) == 0
    assert float(lost.counters["dispatched"]) == 2  # nobody is dispatched while it is down
    retry, _ = run(env, spec, EngineSpec(1.0, concurrency=2, upload_policy="retry"), 41.0)
    assert int(retry.server.applied) == 2 and float(retry.counters["uploads_server_down"]) == 0


def test_chunks_compile_once():
    env = make_env(n=4)
    st, chunk = run(env, AsyncServerSpec(), EngineSpec(1.0, concurrency=2), 10.0)
    for t in (20.0, 30.0, 40.0):
        st = chunk(st, jax.random.key(0), jnp.float32(t))
    assert chunk._cache_size() == 1
