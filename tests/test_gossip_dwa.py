"""Gossip learning and the DWA hybrid on hand-made nodes: merge invariants, offline receivers,
and the two bit-exact reductions (server always up -> FedAsync, never up -> gossip)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from dl.arrays import floats, view
from dl.devices.server import build_server
from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async, make_async_chunk
from dl.engine.async_server import AsyncServerSpec
from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_chunk,
)
from dl.engine.hybrid import init_dwa, make_dwa_chunk
from dl.rules.dwa import DWASpec
from dl.rules.gossip_merge import MergeSpec, merge_weight, merged_age, mix
from dl.traces.availability import from_transitions
from dl.train.local import LocalTrainSpec

N, D, C, M = 6, 3, 2, 6
TRAIN = LocalTrainSpec(batch_size=2, local_steps=2, lr=0.3)
PARAMS = {"w": jnp.full((D, C), 0.1, jnp.float32), "b": jnp.zeros((C,), jnp.float32)}


def apply(p, x):
    return x @ p["w"] + p["b"]


def nodes_av(offline=()):
    """Everyone online for good, except nodes in `offline` (offline from t = 0)."""
    first = np.array([i not in offline for i in range(N)])
    return from_transitions(np.zeros(0, np.int64), np.zeros(0, np.float32), first, N)


def envs(offline=(), server="always"):
    rng = np.random.default_rng(0)
    f = lambda v: jnp.full((N,), v, jnp.float32)  # noqa: E731
    x = jnp.asarray(rng.normal(size=(N, M, D)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, C, size=(N, M)).astype(np.int32))
    counts = jnp.full((N,), M, jnp.int32)
    av = nodes_av(offline)
    srv = build_server({"kind": server}, 1e6, 0)
    aenv = AsyncEnv(x, y, counts, f(1.0), f(4.0), f(1.0), f(2.0), f(0.1), f(0.1), av, srv)
    genv = GossipEnv(x, y, counts, f(4.0), f(1e4), f(1e4), f(2.0), f(0.1), f(0.1), av)
    return aenv, genv


ASPEC = AsyncServerSpec(kind="fedasync", alpha=0.6, staleness="poly")
ENG = EngineSpec(quantum_s=1.0, concurrency=3, max_arrivals=3)
GSPEC = GossipSpec(period_s=3.0, quantum_s=1.0, max_trainings=N)


def node_models(params):
    """[N, ...] node models; system-only states hold one [1, ...] model for all (issue 17)."""
    return jax.tree.map(lambda p: jnp.broadcast_to(p, (N,) + p.shape[1:]), params)


def test_equal_ages_merge_to_the_mean():
    w = merge_weight(jnp.array([5.0]), jnp.array([5.0]), MergeSpec())
    assert float(w[0]) == 0.5
    x = {"w": jnp.array([[1.0, 3.0]])}
    y = {"w": jnp.array([[3.0, 7.0]])}
    np.testing.assert_array_equal(mix(x, y, w)["w"], [[2.0, 5.0]])
    assert float(merged_age(jnp.float32(5), jnp.float32(5), w[0], MergeSpec())) == 5.0
    # ages 1 and 3: weight of the received model 3/4; limited merging with L = 1 keeps the older
    assert float(merge_weight(jnp.float32(1), jnp.float32(3), MergeSpec())) == 0.75
    assert float(merge_weight(jnp.float32(1), jnp.float32(3), MergeSpec("limited", 1.0))) == 1.0
    assert float(merge_weight(jnp.float32(3), jnp.float32(1), MergeSpec("limited", 1.0))) == 0.0
    assert float(merge_weight(jnp.float32(3), jnp.float32(1), MergeSpec("none"))) == 1.0


def test_gossip_with_identical_models_changes_nothing_but_training():
    _, genv = envs()
    spec = GossipSpec(period_s=3.0, quantum_s=1.0, train=False)
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 100, "vmap")
    st = chunk(init_gossip(PARAMS, N, spec, jax.random.key(0)), jax.random.key(1), 60.0)
    assert float(st.counters["messages_sent"]) > 50 and float(st.counters["trainings"]) > 20
    stacked = jax.tree.map(lambda p: jnp.broadcast_to(p, (N,) + p.shape), PARAMS)
    chex.assert_trees_all_equal(node_models(st.params), stacked)


def test_messages_to_offline_nodes_never_change_them():
    _, genv = envs(offline=(2, 4))
    chunk = make_gossip_chunk(apply, TRAIN, GSPEC, genv, 100, "vmap")
    st = chunk(
        init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 100)),
        jax.random.key(1),
        80.0,
    )
    for i in (2, 4):
        chex.assert_trees_all_equal(jax.tree.map(lambda p: p[i], st.params), PARAMS)  # noqa: B023
        assert float(st.age[i]) == 0.0
    assert float(st.age[0]) > 0 and float(st.counters["messages_sent"]) > 0


def test_dwa_with_server_always_up_is_fedasync():
    aenv, genv = envs(server="always")
    fa = make_async_chunk(apply, TRAIN, ASPEC, ENG, aenv, 100, "vmap")
    a = fa(init_async(PARAMS, ASPEC, ENG, N), jax.random.key(3), 60.0)
    dw = make_dwa_chunk(apply, TRAIN, ASPEC, ENG, GSPEC, DWASpec(), aenv, genv, 100, "vmap")
    d0 = init_dwa(
        init_async(PARAMS, ASPEC, ENG, N),
        init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 100)),
    )
    d = dw(d0, jax.random.key(3), 60.0)
    assert int(a.server.applied) > 10
    chex.assert_trees_all_equal(a.server, d.fl.server)
    assert float(d.g.counters["messages_sent"]) == 0


def test_dwa_with_server_never_up_is_gossip():
    aenv, genv = envs(server="never")
    g0 = init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 100))
    gl = make_gossip_chunk(apply, TRAIN, GSPEC, genv, 100, "vmap")(g0, jax.random.key(3), 60.0)
    dw = make_dwa_chunk(apply, TRAIN, ASPEC, ENG, GSPEC, DWASpec(), aenv, genv, 100, "vmap")
    d = dw(init_dwa(init_async(PARAMS, ASPEC, ENG, N), g0), jax.random.key(3), 60.0)
    assert float(gl.counters["trainings"]) > 10
    chex.assert_trees_all_equal(gl.params, d.g.params)
    chex.assert_trees_all_equal(gl.age, d.g.age)
    chex.assert_trees_all_equal(d.fl.server.params, PARAMS)


def test_server_catches_up_after_an_outage():
    """Down for [0, 60): nodes gossip ahead; when it returns their progress is uploaded with a
    boosted weight, so the server's age jumps to the gossip frontier at once."""
    aenv, genv = envs(server="always")
    aenv = aenv.__class__(
        **{
            **aenv.__dict__,
            "server": build_server({"kind": "intervals", "outages": [[0.0, 60.0]]}, 1e6, 0),
        }
    )
    dw = make_dwa_chunk(apply, TRAIN, ASPEC, ENG, GSPEC, DWASpec(), aenv, genv, 100, "vmap")
    d0 = init_dwa(
        init_async(PARAMS, ASPEC, ENG, N),
        init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 100)),
    )
    d = dw(d0, jax.random.key(3), 59.0)
    frontier = float(d.g.age.max())
    assert frontier > 10 and float(d.server_age) == 0.0
    d = dw(d, jax.random.key(3), 62.0)
    assert float(d.server_age) >= frontier


def test_token_account_functions_golden():
    from dl.rules.token_account import TokenSpec, proactive_prob, reactive_count

    spec = TokenSpec(flow="randomized", capacity=20.0, reactivity=10.0)
    a = jnp.array([0.0, 8.0, 9.0, 15.0, 20.0, 21.0])
    np.testing.assert_allclose(proactive_prob(a, spec), [0, 0, 0, 6 / 11, 1.0, 1.0], rtol=1e-6)
    k = reactive_count(jax.random.key(0), jnp.full((20000,), 15.0), spec)
    assert set(np.unique(k).tolist()) == {1, 2} and abs(float(k.mean()) - 1.5) < 0.02
    plain = TokenSpec()
    assert float(proactive_prob(jnp.float32(0.0), plain)) == 1.0
    assert int(reactive_count(jax.random.key(0), jnp.float32(30.0), plain)) == 0


def test_token_account_bursts_and_bounded_balance():
    from dl.rules.token_account import TokenSpec

    _, genv = envs()
    tok = TokenSpec(flow="randomized", capacity=6.0, reactivity=3.0, max_reactive=2)
    spec = GossipSpec(period_s=3.0, quantum_s=1.0, train=False, token=tok)
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 100, "vmap")
    st = chunk(init_gossip(PARAMS, N, spec, jax.random.key(0)), jax.random.key(1), 300.0)
    sent = float(st.counters["messages_sent"])
    assert sent > 0 and float(st.tokens.max()) <= 6.0 + 1.0 and float(st.tokens.min()) >= 0.0
    # one model per period on average at most (plus reactive bursts paid for by banked tokens)
    assert sent <= N * 300.0 / 3.0 * 1.05


def test_merge_all_queue_keeps_the_identity_invariant():
    _, genv = envs()
    spec = GossipSpec(period_s=2.0, quantum_s=1.0, train=False, queue="all")
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 100, "vmap")
    st = chunk(init_gossip(PARAMS, N, spec, jax.random.key(0)), jax.random.key(1), 40.0)
    stacked = jax.tree.map(lambda p: jnp.broadcast_to(p, (N,) + p.shape), PARAMS)
    chex.assert_trees_all_close(node_models(st.params), stacked, rtol=1e-6)
    assert float(st.counters["messages_sent"]) > 0


def test_partitioned_subsampling_keeps_per_partition_ages():
    _, genv = envs()
    spec = GossipSpec(period_s=3.0, quantum_s=1.0, partitions=4)
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 100, "vmap")
    st = chunk(init_gossip(PARAMS, N, spec, jax.random.key(0)), jax.random.key(1), 60.0)
    sent = float(st.counters["messages_sent"])
    assert sent > 0 and float(st.counters["bytes_up"]) == sent * 100 / 4
    np.testing.assert_allclose(st.age, st.part_age.mean(1), rtol=1e-6)
    assert bool((st.part_age.max(1) > st.part_age.min(1)).any())  # partitions age apart
    # with identical models, partitioned merges change nothing either
    spec0 = GossipSpec(period_s=3.0, quantum_s=1.0, partitions=4, train=False)
    st0 = make_gossip_chunk(apply, TRAIN, spec0, genv, 100, "vmap")(
        init_gossip(PARAMS, N, spec0, jax.random.key(0)), jax.random.key(1), 30.0
    )
    stacked = jax.tree.map(lambda p: jnp.broadcast_to(p, (N,) + p.shape), PARAMS)
    chex.assert_trees_all_equal(node_models(st0.params), stacked)


def test_bfloat16_node_storage_halves_node_model_memory_and_still_learns():
    _, genv = envs()
    out = {}
    for dt in ("float32", "bfloat16"):
        spec = GossipSpec(period_s=3.0, quantum_s=1.0, node_dtype=dt)
        chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 100, "vmap")
        st = chunk(init_gossip(PARAMS, N, spec, jax.random.key(0)), jax.random.key(1), 40.0)
        nbytes = sum(x.nbytes for x in jax.tree.leaves(st.params))
        # bfloat16 is stored as its bits (dl.arrays); the values are bfloat16
        assert all(view(x).dtype == jnp.dtype(dt) for x in jax.tree.leaves(st.params))
        out[dt] = (nbytes, st)
    assert out["bfloat16"][0] * 2 == out["float32"][0]
    a, b = out["float32"][1], out["bfloat16"][1]
    np.testing.assert_array_equal(a.age, b.age)  # same events, only storage precision differs
    diff = jax.tree.map(lambda x, y: float(jnp.abs(x - floats(y)).max()), a.params, b.params)
    assert max(jax.tree.leaves(diff)) < 0.05


def test_cyclon_views_drive_gossip():
    _, genv = envs(offline=(5,))
    spec = GossipSpec(period_s=3.0, quantum_s=1.0, topology="cyclon", degree=3, shuffle_len=2)
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 100, "vmap")
    st = chunk(init_gossip(PARAMS, N, spec, jax.random.key(0)), jax.random.key(1), 60.0)
    view = np.asarray(st.cyclon.view)
    assert float(st.counters["trainings"]) > 5
    for i in range(N):
        row = view[i][view[i] >= 0]
        assert i not in row and len(set(row.tolist())) == len(row)
    assert float(st.age[5]) == 0.0  # the offline node never learns
