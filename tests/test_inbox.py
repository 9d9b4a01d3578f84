"""The inbox pool (issue 17, `dl.engine.inbox`): training nodes' queued models in P rows shared
by N nodes. Slots are claimed in node order from the free rows and released when a session
ends; the automatic size bounds the holders (results equal one inbox per node); a smaller pool
loses the models that find no row, counted in `inbox_overflow`."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compile_budget import PARAMS, TRAIN, apply

from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_quantum,
)
from dl.engine.inbox import claim, pool_bound, release
from dl.traces.availability import from_transitions

N, D, C, T = 24, 8, 4, 8  # nodes, features, classes, transitions per node
SPEC = GossipSpec(period_s=2.0, quantum_s=1.0, max_trainings=24)


def test_claim_gives_free_rows_in_node_order_and_counts_what_finds_none():
    # pool of 3 rows; node 1 holds row 0, node 4 holds row 2 (3 = none). Nodes 0, 1, 3, 4
    # queue: 1 and 4 keep their rows; 0 and 3 need one, only row 1 is free: node 0 (first in
    # node order) gets it, node 3 finds none.
    slot = jnp.array([3, 0, 3, 3, 2], jnp.int32)
    want = jnp.array([True, True, False, True, True])
    got, over = claim(slot, want, 3)
    np.testing.assert_array_equal(got, [1, 0, 3, 3, 2])
    np.testing.assert_array_equal(over, [False, False, False, True, False])
    # node 1's session ends: row 0 is free again, and node 3 gets it next time
    slot = release(got, jnp.array([False, True, False, False, False]), 3)
    np.testing.assert_array_equal(slot, [1, 3, 3, 3, 2])
    got, over = claim(slot, jnp.array([False, False, False, True, False]), 3)
    np.testing.assert_array_equal(got, [1, 3, 3, 0, 2])
    assert not bool(over.any())


def test_pool_bound_counts_nodes_online_within_t_comp_plus_a_quantum():
    # node 0 online [0, 2), node 1 online [6, 8); quantum 1 s. Node 0 can hold an inbox until
    # its last session ends: started at t1 = 2 at the latest, it trains t_comp. Sessions are
    # extended by t_comp + q and widened by 1e-3 q: node 0 counts in quanta up to
    # ceil(2 + t_comp + 1 + 0.001) - 1, node 1 from floor(6 - 0.001) = 5.
    av = from_transitions(
        np.array([0, 1, 1, 1]), np.array([2.0, 6.0, 8.0, 9.0], np.float32), np.array([1, 0]), 2
    )
    # t_comp 1.5: node 0 up to quantum ceil(4.501) - 1 = 4 < 5: never both -> 1 row
    assert pool_bound(av, np.array([1.5, 0.0]), 1.0) == 1
    # t_comp 2.5: up to quantum ceil(5.501) - 1 = 5: both in quantum 5 -> 2 rows
    assert pool_bound(av, np.array([2.5, 0.0]), 1.0) == 2


def world():
    """N nodes online about half the time over 300 s, t_comp 2-6 s (several messages arrive
    while a node trains, so inboxes are used)."""
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(N, 20, D)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, C, size=(N, 20)).astype(np.int32))
    times = np.sort(rng.uniform(0, 300, size=(N, T)), axis=1).astype(np.float32)
    av = from_transitions(np.repeat(np.arange(N), T), times.ravel(), rng.random(N) < 0.5, N)
    f = lambda lo, hi: jnp.asarray(rng.uniform(lo, hi, N), jnp.float32)  # noqa: E731
    t_comp = f(2.0, 6.0)
    env = GossipEnv(
        x,
        y,
        jnp.full((N,), 20),
        t_comp,
        f(1e4, 2e4),
        f(1e4, 2e4),
        f(2, 3),
        f(0.1, 0.2),
        f(0.1, 0.2),
        av,
    )
    return env


def run(spec, env, pool, quanta=300):
    """State after `quanta` quanta, and the most nodes holding an inbox at once."""
    step = make_gossip_quantum(apply, TRAIN, spec, env, 200, "vmap")
    st = init_gossip(PARAMS, N, spec, jax.random.key(0), gossip_capacity(spec, env, 200), pool)
    p = jax.tree.leaves(st.inbox)[0].shape[0]

    def body(_, c):
        s, most = c
        s = step(s, jax.random.key(3), jnp.ones((N,), bool))
        return s, jnp.maximum(most, (s.inbox_slot < p).sum())

    return jax.jit(lambda s: jax.lax.fori_loop(0, quanta, body, (s, jnp.int32(0))))(st)


@pytest.mark.parametrize(
    "spec",
    [SPEC, replace(SPEC, queue="all"), replace(SPEC, partitions=2)],
    ids=["last", "all", "partitions"],
)
def test_the_automatic_pool_gives_the_results_of_one_inbox_per_node(spec):
    env = world()
    bound = pool_bound(env.nodes, env.t_comp, spec.quantum_s)
    assert bound < N  # the pool is smaller than one row per node
    one, most_one = run(spec, env, None)  # one row per node
    pool, most = run(spec, env, bound)
    assert int(most) >= 2 and int(most) == int(most_one) <= bound
    assert float(one.counters["trainings"]) > 0 and float(pool.counters["inbox_overflow"]) == 0
    assert float(one.counters["trainings_deferred"]) == 0  # the bound's premise
    skip = ("inbox", "inbox_slot", "inbox_mask")  # pool layout differs; everything else equal
    for f in one.__dataclass_fields__:
        if f not in skip:
            jax.tree.map(np.testing.assert_array_equal, getattr(pool, f), getattr(one, f))


def test_a_smaller_pool_loses_the_models_that_find_no_row_and_counts_them():
    env = world()
    one, _ = run(SPEC, env, None)
    small, most = run(SPEC, env, 1)
    assert int(most) == 1 and float(small.counters["inbox_overflow"]) > 0
    assert float(one.counters["inbox_overflow"]) == 0
    # the lost models were never merged: the node models differ
    assert not np.array_equal(np.asarray(small.params["w"]), np.asarray(one.params["w"]))
