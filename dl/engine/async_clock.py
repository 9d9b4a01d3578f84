"""Event-accurate virtual clock for asynchronous FL (FedAsync, FedBuff).

Time advances in quanta of `quantum_s`. In the quantum [t, t + q) the engine
1. takes every slot due before t + q, sorted by (due time, node id), up to `max_arrivals` of them
   (the rest stay due and are counted in `arrivals_deferred`: never dropped);
2. drops work whose node went offline before finishing (`updates_lost`; energy still counts);
3. trains exactly the arriving nodes that finished (a fixed-capacity gather, `dl.train.local`),
   from the model each downloaded at dispatch, with a key derived from (seed, dispatch quantum,
   node id);
4. applies their uploads to the server in order (`dl.engine.async_server`); an upload to a
   down server is lost or retried next quantum (`upload_policy`);
5. at t + q, if the server is up, refills free slots with online idle nodes drawn at random
   (FedBuff's max concurrency; FedScale `async_aggregator.py`), each due at
   `t + q + t_down + t_comp + t_up` or when it goes offline, whichever is first.
A chunk of quanta is one jitted `lax.while_loop` taking the node arrays as an argument and
donating its state (`dl.engine.jitted`); with `train=False` (system-only mode) steps 3-4 skip the
model math and hold no model copies (slots and the FedBuff buffer are empty placeholders; the
server keeps its one model), and everything
else (clock, traces, messages, bytes, energy) is identical.
"""

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dl.engine.async_server import (
    AsyncServerSpec,
    ServerState,
    apply_arrivals,
    init_server,
)
from dl.engine.draw import top_of, uniform
from dl.engine.jitted import EnvChunk
from dl.engine.slots import Slots, empty_slots, zero_counters
from dl.errors import ConfigError
from dl.traces.availability import Availability, advance, online_at
from dl.train.local import LocalTrainSpec, make_batch_train


@dataclass(frozen=True)
class EngineSpec:
    quantum_s: float = 1.0
    concurrency: int = 100  # C: sessions in flight
    max_arrivals: int = 32  # A: arrivals trained and applied per quantum
    upload_policy: str = "lost"  # [lost, retry]: uploads reaching a down server
    train: bool = True  # False: system-only mode


@struct.dataclass
class AsyncEnv:
    """Per-node arrays (node axis first) and availability: an argument of the jitted chunk."""

    x: Any  # [N, M, ...]
    y: Any  # [N, M, ...]
    counts: Any  # [N] i32
    t_down: Any  # [N] f32 s to download the model
    t_comp: Any  # [N] f32 s of local training
    t_up: Any  # [N] f32 s to upload
    power_w: Any  # [N] f32 training power
    e_down_j: Any  # [N] f32 radio J per model download
    e_up_j: Any  # [N] f32 radio J per model upload
    nodes: Availability  # N rows
    server: Availability  # 1 row


@struct.dataclass
class AsyncState:
    server: ServerState
    slots: Slots
    busy: jnp.ndarray  # [N] bool node has a session in flight
    seen: jnp.ndarray  # [N] i32 availability transitions <= the last dispatch time (a cursor)
    flip: jnp.ndarray  # [N] f32 time of each node's next transition after it (+inf: none)
    quantum: jnp.ndarray  # [] i32 quanta elapsed; clock = quantum * quantum_s
    counters: dict  # name -> [] f32, drained by the host after each chunk


def init_async(params, spec: AsyncServerSpec, eng: EngineSpec, n: int) -> AsyncState:
    """The initial state; with `eng.train=False` no model is held (empty placeholders)."""
    return AsyncState(
        server=init_server(params, spec, eng.train),
        slots=empty_slots(params, eng.concurrency, eng.train),
        busy=jnp.zeros((n,), bool),
        seen=jnp.full((n,), -1, jnp.int32),  # nothing loaded: the first dispatch loads
        flip=jnp.full((n,), -jnp.inf, jnp.float32),
        quantum=jnp.zeros((), jnp.int32),
        counters=zero_counters(),
    )


def server_up(av: Availability, t: jnp.ndarray) -> jnp.ndarray:
    """Server state at times t (any shape)."""
    k = jnp.searchsorted(av.times[0], t, side="right")
    return av.first_online[0] ^ (k % 2 == 1)


def make_async_parts(
    apply_fn,
    train: LocalTrainSpec,
    spec: AsyncServerSpec,
    eng: EngineSpec,
    env: AsyncEnv,
    model_bytes: int,
    strategy: str,
):
    """Returns `(arrivals, dispatch)`, the two halves of a quantum (see module docstring).

    `arrivals(st, key, t0, t1) -> (st, info)` with info = dict(order [A] slot ids, node [A],
    done [A] processed, reach [A] uploads that reached the server, taken [A] uploads the server
    accepted (reach minus those dropped for staleness), models (pytree [A, ...] or
    None)); `dispatch(st, key, t1, allowed [N] bool, before=None) -> (st, info)` with
    info = dict(picked [C'], assign [C']); `before(st, picked, assign) -> st` runs between the
    draw and the download (the hybrid's uploads of unsynced progress)."""
    spec.validate()
    n = int(env.counts.shape[0])
    c, a, q = eng.concurrency, min(eng.max_arrivals, eng.concurrency), eng.quantum_s
    if c < 1 or a < 1 or q <= 0:
        raise ConfigError("algorithm.concurrency, max_arrivals must be >= 1, quantum_s > 0")
    if eng.upload_policy not in ("lost", "retry"):
        raise ConfigError(f"unknown server.upload_policy '{eng.upload_policy}' (lost, retry)")
    c_eff = min(c, n)
    if train.lr_schedule != "constant":
        raise ConfigError(
            f"task.train.lr_schedule={train.lr_schedule} is defined for fedavg and gossip "
            "(server / model age as the lr clock); fedasync, fedbuff and dwa use a constant lr"
        )
    batch_train = make_batch_train(apply_fn, train, strategy)
    mb = jnp.float32(model_bytes)
    env0 = env

    def arrivals(st: AsyncState, key, t0, t1, env: AsyncEnv | None = None):
        env = env0 if env is None else env
        sl, cnt = st.slots, dict(st.counters)
        due = (sl.node >= 0) & (sl.finish < t1)
        order = jnp.lexsort((sl.node, sl.finish))[:a]  # by due time, then node id
        valid = due[order]
        cnt["arrivals_deferred"] += (due.sum() - valid.sum()).astype(jnp.float32)
        node = jnp.where(valid, sl.node[order], 0)
        finished = valid & sl.completes[order]
        up = server_up(env.server, sl.finish[order])
        retry = finished & ~up if eng.upload_policy == "retry" else jnp.zeros_like(valid)
        reach = finished & up
        done = valid & ~retry
        server = st.server
        models = None
        if eng.train:
            starts = jax.tree.map(lambda p: p[order], sl.params)
            keys = jax.vmap(lambda dq, i: jax.random.fold_in(jax.random.fold_in(key, dq), i))(
                sl.dispatch_q[order], node
            )

            def work(srv):
                # train every session that finished (also those whose upload is then lost to a
                # down server: the hybrid's node keeps that model), apply those that reached the
                # server; skipped in quanta where no session finished
                m, _ = batch_train(
                    starts, env.x, env.y, env.counts[node], finished, keys, nodes=node
                )
                srv, taken = apply_arrivals(
                    srv, starts, m, sl.version[order], reach, spec, return_taken=True
                )
                return srv, m, taken

            server, models, taken = jax.lax.cond(
                finished.any(), work, lambda srv: (srv, starts, jnp.zeros_like(reach)), server
            )
        else:
            server, taken = apply_arrivals(
                server, None, None, sl.version[order], reach, spec, False, return_taken=True
            )
        # energy: compute until done or until the node went offline; upload if it finished
        ran = jnp.clip(sl.finish[order] - sl.start[order] - env.t_down[node], 0.0, env.t_comp[node])
        e_comp = jnp.where(done, env.power_w[node] * ran, 0.0)
        e_up = jnp.where(done & finished, env.e_up_j[node], 0.0)
        wasted = jnp.where(done & ~reach, e_comp + e_up + env.e_down_j[node], 0.0)
        cnt["energy_compute_j"] += e_comp.sum()
        cnt["energy_radio_j"] += e_up.sum()
        cnt["energy_wasted_j"] += wasted.sum()
        cnt["bytes_up"] += mb * (done & finished).sum()
        cnt["updates_lost"] += (done & ~finished).sum().astype(jnp.float32)
        cnt["uploads_server_down"] += (done & finished & ~up).sum().astype(jnp.float32)
        cnt["arrivals"] += done.sum().astype(jnp.float32)
        # free processed slots; retried uploads become due again next quantum
        slot = jnp.where(done, order, c)
        rslot = jnp.where(retry, order, c)
        slots = sl.replace(
            node=sl.node.at[slot].set(-1, mode="drop"),
            finish=sl.finish.at[slot].set(jnp.inf, mode="drop").at[rslot].set(t1, mode="drop"),
        )
        busy = st.busy.at[jnp.where(done, node, n)].set(False, mode="drop")
        info = dict(
            order=order,
            node=node,
            done=done,
            reach=reach,
            taken=taken,
            finished=finished,
            models=models,
        )
        return st.replace(server=server, slots=slots, busy=busy, counters=cnt), info

    def dispatch(st: AsyncState, key, t1, allowed=None, before=None, env: AsyncEnv | None = None):
        env = env0 if env is None else env
        t_client = env.t_down + env.t_comp + env.t_up
        sl, cnt = st.slots, dict(st.counters)
        free = sl.node < 0
        seen, flip = advance(env.nodes, st.seen, st.flip, t1)  # is_online without a search
        cand = online_at(env.nodes, seen) & ~st.busy & (env.counts > 0) & server_up(env.server, t1)
        if allowed is not None:
            cand = cand & allowed
        score = jnp.where(cand, uniform(key, n), -1.0)  # = jax.random.uniform(key, (n,))
        top, picked = top_of(score, c_eff, free.sum())  # [C'] random online idle nodes
        free_idx = jnp.argsort(~free, stable=True)[:c_eff]  # free slots first
        assign = (jnp.arange(c_eff) < free.sum()) & (top >= 0)
        slot = jnp.where(assign, free_idx, c)
        t_done = t1 + t_client[picked]
        off = flip[picked]  # = next_transition(rows(env.nodes, picked), t1), from the cursor
        if before is not None:
            st = before(st, picked, assign)
            cnt = dict(st.counters)
        server = st.server
        params = sl.params
        if eng.train:
            params = jax.tree.map(
                lambda s, p: s.at[slot].set(jnp.broadcast_to(p, (c_eff,) + p.shape), mode="drop"),
                sl.params,
                server.params,
            )
        slots = Slots(
            node=sl.node.at[slot].set(picked, mode="drop"),
            start=sl.start.at[slot].set(t1, mode="drop"),
            finish=sl.finish.at[slot].set(jnp.minimum(t_done, off), mode="drop"),
            completes=sl.completes.at[slot].set(off > t_done, mode="drop"),
            version=sl.version.at[slot].set(server.version, mode="drop"),
            dispatch_q=sl.dispatch_q.at[slot].set(st.quantum, mode="drop"),
            params=params,
        )
        busy = st.busy.at[jnp.where(assign, picked, n)].set(True, mode="drop")
        cnt["bytes_down"] += mb * assign.sum()
        cnt["energy_radio_j"] += jnp.where(assign, env.e_down_j[picked], 0.0).sum()
        cnt["dispatched"] += assign.sum().astype(jnp.float32)
        info = dict(picked=picked, assign=assign, slot=slot)
        return st.replace(slots=slots, busy=busy, seen=seen, flip=flip, counters=cnt), info

    return arrivals, dispatch


def make_async_chunk(
    apply_fn,
    train: LocalTrainSpec,
    spec: AsyncServerSpec,
    eng: EngineSpec,
    env: AsyncEnv,
    model_bytes: int,
    strategy: str,
):
    """Returns jitted `chunk(state, key, t_stop) -> state`: quanta until clock >= t_stop."""
    arrivals, dispatch = make_async_parts(apply_fn, train, spec, eng, env, model_bytes, strategy)
    q = eng.quantum_s

    def quantum(env: AsyncEnv, st: AsyncState, key) -> AsyncState:
        t0 = st.quantum.astype(jnp.float32) * q
        t1 = (st.quantum + 1).astype(jnp.float32) * q
        st, _ = arrivals(st, jax.random.fold_in(key, 0), t0, t1, env=env)
        qkey = jax.random.fold_in(jax.random.fold_in(key, 1), st.quantum)
        st, _ = dispatch(st, qkey, t1, env=env)
        return st.replace(quantum=st.quantum + 1)

    def chunk(env: AsyncEnv, state: AsyncState, key, t_stop):
        def cond(st):
            return st.quantum.astype(jnp.float32) * q < t_stop

        return jax.lax.while_loop(cond, lambda st: quantum(env, st, key), state)

    return EnvChunk(chunk, env, "async_chunk")
