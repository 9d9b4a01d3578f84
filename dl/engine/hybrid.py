"""The hybrid: doubly weighted averaging (DWA), ALGORITHMS.md §3.2 [our proposal: DecentraLearn
has published no formula]. Nodes follow the server while it is reachable and gossip while it is
not; every merge weighs the two models by who sent them (server vs. peer, with staleness) and by
model age.

- Server up: the async-FL engine (`async_engine`) runs unchanged: a dispatched node first
  uploads its unsynced (gossip) progress, then adopts the server model, trains and uploads.
  A clean upload (server version + own steps) mixes with `alpha * s(t - tau)`, exactly FedAsync.
  An upload carrying gossip progress mixes with `min(lam_max, alpha * s(k) * r**nu)`, where
  `k = ceil(max(0, a_s - a_y) / H)` is the age-gap staleness and `r = max(1, (a_y - H) / a_s)`
  boosts a stale server towards the gossip frontier. Claimed ages are capped at
  `a_s + age_cap_steps` (forged ages); the server age becomes max(a_s, a_y).
- Server down: gossip learning (`gossip_engine`) among the nodes not in a server session.
Limits pinned by tests: server always up -> bit-identical to FedAsync (no gossip, every upload
clean, r = 1); server never up -> bit-identical to gossip learning. The mode switch uses the
server's true state at the quantum start (an ideal heartbeat; no hysteresis).
"""

import jax
import jax.numpy as jnp
from flax import struct

from dl.arrays import get_rows, put_rows
from dl.engine.async_clock import AsyncEnv, AsyncState, EngineSpec, make_async_parts, server_up
from dl.engine.async_server import AsyncServerSpec
from dl.engine.gossip_clock import GossipEnv, GossipSpec, GossipState, make_gossip_quantum
from dl.engine.jitted import EnvChunk
from dl.rules.dwa import DWASpec, adopt_server, unsynced_upload


@struct.dataclass
class DWAState:
    fl: AsyncState
    g: GossipState
    slot_age: jnp.ndarray  # [C] f32 server age downloaded by each slot
    server_age: jnp.ndarray  # [] f32 age of the server model


def init_dwa(fl: AsyncState, g: GossipState) -> DWAState:
    c = fl.slots.node.shape[0]
    return DWAState(fl, g, jnp.zeros((c,), jnp.float32), jnp.zeros((), jnp.float32))


def make_dwa_chunk(
    apply_fn,
    train,
    aspec: AsyncServerSpec,
    eng: EngineSpec,
    gspec: GossipSpec,
    dspec: DWASpec,
    aenv: AsyncEnv,
    genv: GossipEnv,
    model_bytes: int,
    strategy: str,
):
    """Jitted `chunk(state, key, t_stop) -> state` of the hybrid."""
    arrivals, dispatch = make_async_parts(apply_fn, train, aspec, eng, aenv, model_bytes, strategy)
    gstep = make_gossip_quantum(apply_fn, train, gspec, genv, model_bytes, strategy)
    q = eng.quantum_s
    n = int(aenv.counts.shape[0])
    h = jnp.float32(train.local_steps)
    mb = jnp.float32(model_bytes)

    def adopt_uploads(aenv: AsyncEnv, d: DWAState, st: AsyncState, picked, assign):
        """Dispatched nodes with unsynced progress upload it before downloading (in order)."""
        g = d.g
        up = assign & g.dirty[picked]

        def one(carry, arrival):
            return unsynced_upload(carry, arrival, h, aspec, dspec, eng.train), None

        ys = (
            jax.tree.map(lambda p: get_rows(p, picked).astype(jnp.float32), g.params)
            if eng.train
            else jnp.zeros_like(up)
        )
        (x, version, a_s), _ = jax.lax.scan(
            one, (st.server.params, st.server.version, d.server_age), (ys, g.age[picked], up)
        )
        cnt = dict(st.counters)
        cnt["bytes_up"] += mb * up.sum()
        cnt["energy_radio_j"] += jnp.where(up, aenv.e_up_j[picked], 0.0).sum()
        server = st.server.replace(
            params=x, version=version, applied=st.server.applied + up.sum().astype(jnp.int32)
        )
        return st.replace(server=server, counters=cnt), a_s

    def quantum(aenv: AsyncEnv, genv: GossipEnv, d: DWAState, key) -> DWAState:
        fl = d.fl
        t0 = fl.quantum.astype(jnp.float32) * q
        t1 = (fl.quantum + 1).astype(jnp.float32) * q
        # 1. server sessions due in this quantum (exactly the FedAsync/FedBuff engine)
        fl, info = arrivals(fl, jax.random.fold_in(key, 0), t0, t1, env=aenv)
        node, fin = info["node"], info["done"] & info["finished"]
        g = d.g
        tgt = jnp.where(fin, node, n)
        new_age = d.slot_age[info["order"]] + h
        params = g.params
        if eng.train:
            params = jax.tree.map(lambda p, y: put_rows(p, tgt, y), params, info["models"])
        g = g.replace(
            params=params,
            age=g.age.at[tgt].set(new_age, mode="drop"),
            dirty=g.dirty.at[tgt].set(~info["reach"], mode="drop"),
        )
        # only uploads the server merged age it (not those dropped for staleness)
        server_age = jnp.maximum(d.server_age, jnp.max(jnp.where(info["taken"], new_age, 0.0)))
        # 2. gossip among nodes not in a server session, only while the server is down
        down = ~server_up(aenv.server, t0)
        g = gstep(g, key, ~fl.busy, down, env=genv)
        # 3. refill server sessions; unsynced nodes upload first, everyone adopts the server
        box = {}

        def before(st, picked, assign):
            st, a_s = adopt_uploads(aenv, d.replace(g=g, server_age=server_age), st, picked, assign)
            box["a_s"] = a_s
            return st

        fl, dinfo = dispatch(
            fl,
            jax.random.fold_in(jax.random.fold_in(key, 1), fl.quantum),
            t1,
            ~g.training,
            before,
            env=aenv,
        )
        server_age = box["a_s"]
        picked, slot = (
            dinfo["picked"],
            jnp.where(dinfo["assign"], dinfo["slot"], fl.slots.node.shape[0]),
        )
        took = jnp.where(dinfo["assign"], picked, n)
        params, age, dirty = adopt_server(
            g.params, g.age, g.dirty, took, fl.server.params, server_age, eng.train
        )
        g = g.replace(params=params, age=age, dirty=dirty)
        slot_age = d.slot_age.at[slot].set(server_age, mode="drop")
        return DWAState(fl.replace(quantum=fl.quantum + 1), g, slot_age, server_age)

    def chunk(envs, state: DWAState, key, t_stop):
        aenv, genv = envs

        def cond(d):
            return d.fl.quantum.astype(jnp.float32) * q < t_stop

        return jax.lax.while_loop(cond, lambda d: quantum(aenv, genv, d, key), state)

    return EnvChunk(chunk, (aenv, genv), "dwa_chunk")
