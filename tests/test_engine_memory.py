"""A chunk holds one copy of its state (issue 17): its large leaves are donated, so the caller's
state is consumed and the result is what an undonated chunk gives; a system-only state holds
no per-node model. Tiny worlds stay under `min_donate_bytes`, so these tests lower it to 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_compile_budget import ASPEC, ENG, GSPEC, PARAMS, TRAIN, N, apply, async_envs

from dl.engine.async_clock import EngineSpec, init_async, make_async_chunk
from dl.engine.gossip_clock import GossipSpec, gossip_capacity, init_gossip, make_gossip_chunk
from dl.engine.hybrid import init_dwa, make_dwa_chunk
from dl.rules.dwa import DWASpec


def gossip(spec=GSPEC):
    _, genv = async_envs(1)
    chunk = make_gossip_chunk(apply, TRAIN, spec, genv, 200, "vmap")
    cap = gossip_capacity(spec, genv, 200)
    return chunk, lambda: init_gossip(PARAMS, N, spec, jax.random.key(0), cap)


def dwa():
    aenv, genv = async_envs(1)
    chunk = make_dwa_chunk(apply, TRAIN, ASPEC, ENG, GSPEC, DWASpec(), aenv, genv, 200, "vmap")
    cap = gossip_capacity(GSPEC, genv, 200)
    return chunk, lambda: init_dwa(
        init_async(PARAMS, ASPEC, ENG, N), init_gossip(PARAMS, N, GSPEC, jax.random.key(0), cap)
    )


def asynchronous():
    aenv, _ = async_envs(1)
    chunk = make_async_chunk(apply, TRAIN, ASPEC, ENG, aenv, 200, "vmap")
    return chunk, lambda: init_async(PARAMS, ASPEC, ENG, N)


@pytest.mark.parametrize("make", [gossip, dwa, asynchronous], ids=["gossip", "dwa", "async"])
def test_donated_chunks_consume_the_state_and_change_nothing(make):
    chunk, init = make()
    key = jax.random.key(1)
    kept = init()
    for t in (10.0, 20.0):
        kept = chunk(kept, key, t)  # default threshold: nothing of this tiny world donated
    chunk.min_donate_bytes = 0
    st = init()
    first = st
    for t in (10.0, 20.0):
        st = chunk(st, key, t)
    # every array leaf of the consumed state was donated (deleted), and the result is the same
    leaves = [x for x in jax.tree.leaves(first) if isinstance(x, jax.Array)]
    assert leaves and all(x.is_deleted() for x in leaves)
    jax.tree.map(np.testing.assert_array_equal, st, kept)


def test_shared_buffers_are_copied_before_donation():
    chunk, init = gossip()
    chunk.min_donate_bytes = 0
    st = init()
    z = jnp.zeros((N,), jnp.float32)  # one buffer in three fields: donating it twice would fail
    st = st.replace(age=z, inbox_age=z, tokens=z)
    st = chunk(st, jax.random.key(1), 5.0)
    assert float(st.counters["messages_sent"]) > 0


def test_system_only_state_holds_no_node_models():
    spec = GossipSpec(period_s=5.0, quantum_s=1.0, max_trainings=4, train=False)
    chunk, init = gossip(spec)
    st = chunk(init(), jax.random.key(1), 20.0)
    model = sum(p.size for p in jax.tree.leaves(PARAMS))
    # node models and inbox: one model each ([1, ...]), not N; nothing on the wire
    assert sum(p.size for p in jax.tree.leaves((st.params, st.inbox))) == 2 * model
    assert st.inflight.params is None
    a = init_async(PARAMS, ASPEC, EngineSpec(concurrency=4, max_arrivals=4, train=False), N)
    assert sum(p.size for p in jax.tree.leaves((a.slots.params, a.server.buffer))) == 0
