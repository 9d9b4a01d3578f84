"""Gossip learning on the event-accurate clock (Hegedűs et al., DAIS 2019 / JPDC 2021).

Every node holds a model and its age (SGD steps along its lineage). Every `period_s` (timers
start at a random offset in [0, period)) an online node sends (model, age) to a peer from the
peer sampler. A message takes `bits / min(up, down)` seconds on the wire and is merged when it
*arrives*, carrying the sender's model, age, partition and coordinate mask as they were at send
time (`dl.engine.inflight`); it is lost if the sender or the receiver is not online throughout
[send, arrival] (DESIGN.md §Semantics 3: "lost if the sender or the receiver goes offline
before then"), or if the receiver is not `eligible` when it arrives. An idle receiver merges the
message (`gossip_merge`) and starts training on its own data; a training node keeps only the
last model received and merges it when its training ends, then trains again (dasklearn
`gossip/client.py`). A node that goes offline mid-training loses that session (energy still
counts) and its queued model; sessions start at the end of the quantum of their trigger, and a
node offline by then loses the session at once.

Per quantum [t0, t1), in this order:
  (A) completions: training sessions due before t1 finish in (time, node id) order up to a
      fixed capacity (the rest wait, `trainings_deferred`); only those nodes are trained;
  (B) sends: every node whose timer falls in the quantum (and the token account's reactive
      sends, at t0) sends; payloads are the models after (A). Messages whose path fails are
      counted lost now (traces are known in advance); the others enter the in-flight buffer
      with a copy of their payload (`dl.engine.inflight`);
  (C) deliveries: every message in the buffer with arrival < t1 (those on the wire from earlier
      quanta and those just sent that arrive within the quantum) in (arrival time, sender id,
      slot) order; per receiver the first is merged if it is idle, the others are queued; they
      leave the buffer, the rest stay on the wire.
So a transfer shorter than the rest of the quantum is merged in the quantum it was sent in, and
a transfer of several quanta only in the quantum that contains its arrival time. Bytes and
radio energy of the upload count at send, of the download at delivery. Model work in (A)-(C)
touches only the rows that train, send, merge or queue (`dl.engine.rows`): payloads come from
the buffer, so node models are updated in place, never copied whole.
`eligible` masks nodes that gossip (the hybrid excludes nodes busy with the server). With
`train=False` no model math runs and no per-node model or payload is stored (system-only mode).
Model subsampling (`sample_frac` < 1) sends a random coordinate subset per message and merges
only those coordinates; bytes scale with the fraction.
"""

import jax
import jax.numpy as jnp

from dl.arrays import get_rows, put_rows
from dl.engine import inbox as ib
from dl.engine.gossip_state import (  # noqa: F401 (re-exported: the engine's public names)
    COUNTERS,
    GossipEnv,
    GossipSpec,
    GossipState,
    gossip_capacity,
    init_gossip,
    message_bits,
)
from dl.engine.inflight import InFlight, capacity_of, grow, store_all
from dl.engine.jitted import EnvChunk
from dl.engine.masks import message_masks
from dl.engine.rows import row_chunk, take_rows, update_rows
from dl.errors import ConfigError
from dl.network.cyclon import cyclon_sample, cyclon_shuffle
from dl.network.peers import make_peer_sampler
from dl.rules.gossip_merge import merge_weight, merged_age, mix
from dl.rules.token_account import proactive_prob, reactive_count
from dl.traces.availability import Availability, is_online, online_during, session_end
from dl.train.local import LocalTrainSpec, make_batch_train


def make_gossip_quantum(
    apply_fn,
    train: LocalTrainSpec,
    spec: GossipSpec,
    env: GossipEnv,
    model_bytes: int,
    strategy: str,
    row_chunk_size: int | None = None,
):
    """Returns `step(state, key, eligible [N] bool) -> state` for one quantum (not jitted).
    `row_chunk_size`: node rows merged or queued per pass (`dl.engine.rows`; None: automatic)."""
    spec.validate()
    n = int(env.counts.shape[0])
    a_cap = min(spec.max_trainings, n)
    q = spec.quantum_s
    batch_train = make_batch_train(apply_fn, train, strategy)
    cyclon = spec.topology == "cyclon"
    sampler = None if cyclon else make_peer_sampler(spec.topology, n, spec.degree, spec.seed)
    every = max(1, int(round(spec.period_s / spec.quantum_s)))
    msg_bits = jnp.float32(message_bits(spec, model_bytes))
    need = gossip_capacity(spec, env, model_bytes)
    cap_logical = spec.inflight_cap  # > 0: messages on the wire at once (explicit)
    n_part = spec.partitions
    tspec = spec.token
    n_slots = spec.n_slots
    nm = n * n_slots
    steps = jnp.float32(train.local_steps)
    env0 = env  # the factory's arrays: used only by a `step` called without `env`

    def ids():
        return jnp.arange(n, dtype=jnp.int32)  # traced: an iota, not an [N] constant

    full = spec.sample_frac
    # messages stored per pass of (D): about one period's sends spread over its quanta
    store_chunk = max(16, -(-n * n_slots // every))
    r_chunk = row_chunk(n, n * n_slots / every) if row_chunk_size is None else row_chunk_size

    def start_training(env: GossipEnv, st: GossipState, start: jnp.ndarray, t1) -> GossipState:
        """Sessions start at the quantum's end t1 and run t_comp, or until the node goes
        offline (lost); a node offline at t1 loses its session at once (0 s of compute)."""
        t_done = t1 + env.t_comp
        off = session_end(env.nodes, t1)
        return st.replace(
            training=st.training | start,
            train_start=jnp.where(start, t1, st.train_start),
            train_end=jnp.where(start, jnp.minimum(t_done, off), st.train_end),
            train_ok=jnp.where(start, off > t_done, st.train_ok),
            train_q=jnp.where(start, st.quantum, st.train_q),
        )

    def merge_into(st, y_rows, a_y, mask_rows, take, part):
        """Merges the models `y_rows(idx) -> [c, ...]` (sender ages a_y [N]) into the nodes with
        `take`; returns (params, age, part_age). `mask_rows(idx)`: the coordinates carried (or
        None). Model work only on the taken rows (`dl.engine.rows`). Partitioned mode: only
        partition `part` [N] is merged, weighted by its own ages."""
        if n_part == 1:
            w = jnp.where(take, merge_weight(st.age, a_y, spec.merge), 0.0)
            new_age = jnp.where(take, merged_age(st.age, a_y, w, spec.merge), st.age)
            part_age = new_age[:, None]
        else:
            a_l = jnp.take_along_axis(st.part_age, part[:, None], 1)[:, 0]
            w = jnp.where(take, merge_weight(a_l, a_y, spec.merge), 0.0)
            a_new = jnp.where(take, merged_age(a_l, a_y, w, spec.merge), a_l)
            part_age = st.part_age.at[ids(), part].set(a_new)
            new_age = part_age.mean(1)
        if not spec.train:
            return st.params, new_age, part_age

        def merged(idx, now):  # each row is merged once: `now`'s rows idx are the old ones
            ww = w[jnp.minimum(idx, n - 1)]
            return mix(take_rows(now, idx), y_rows(idx), ww, mask_rows(idx))

        return update_rows(st.params, take, r_chunk, merged), new_age, part_age

    def message_mask(part, seed, like):
        """Coordinates carried by messages with these partitions / seeds (None: all)."""
        return message_masks(part, seed, like, n_part, full)

    def completions(env: GossipEnv, st: GossipState, key, t1) -> GossipState:
        cnt = dict(st.counters)
        due = st.training & (st.train_end < t1)
        order = jnp.lexsort((ids(), jnp.where(due, st.train_end, jnp.inf)))[:a_cap]
        valid = due[order]
        cnt["trainings_deferred"] += (due.sum() - valid.sum()).astype(jnp.float32)
        ok = valid & st.train_ok[order]
        params = st.params
        if spec.train:
            start = jax.tree.map(lambda p: get_rows(p, order).astype(jnp.float32), params)
            keys = jax.vmap(lambda sq, i: jax.random.fold_in(jax.random.fold_in(key, sq), i))(
                st.train_q[order], order
            )
            new, _ = batch_train(
                start, env.x, env.y, env.counts[order], ok, keys, st.age[order], order
            )
            slot = jnp.where(ok, order, n)
            params = jax.tree.map(lambda p, v: put_rows(p, slot, v), params, new)
        age = st.age.at[jnp.where(ok, order, n)].add(steps, mode="drop")
        part_age = st.part_age.at[jnp.where(ok, order, n)].add(steps, mode="drop")
        done = jnp.zeros((n,), bool).at[jnp.where(valid, order, n)].set(True, mode="drop")
        okn = jnp.zeros((n,), bool).at[jnp.where(ok, order, n)].set(True, mode="drop")
        ran = jnp.where(done, st.train_end - st.train_start, 0.0)
        e = env.power_w * ran
        cnt["energy_compute_j"] += e.sum()
        cnt["energy_wasted_j"] += jnp.where(done & ~okn, e, 0.0).sum()
        cnt["trainings"] += ok.sum().astype(jnp.float32)
        cnt["trainings_lost"] += (valid & ~ok).sum().astype(jnp.float32)
        st = st.replace(
            params=params, age=age, part_age=part_age, training=st.training & ~done, counters=cnt
        )
        # a finished node merges the last model it received, then trains again
        again = okn & st.has_inbox
        inbox, inbox_mask, slot = st.inbox, st.inbox_mask, st.inbox_slot
        params, age, part_age = merge_into(
            st,
            lambda idx: ib.read(inbox, slot, idx),
            st.inbox_age,
            lambda idx: None if inbox_mask is None else ib.read(inbox_mask, slot, idx),
            again,
            st.inbox_part,
        )
        st = st.replace(
            params=params,
            age=age,
            part_age=part_age,
            has_inbox=st.has_inbox & ~done,
            inbox_slot=ib.release(slot, done, ib.rows_in(st.inbox)),
            dirty=st.dirty | okn,
        )
        return start_training(env, st, again, t1)

    def sends(env: GossipEnv, st: GossipState, key, t0, t1, eligible, enabled):
        """(B): returns (state, messages [S*N] with `valid` = sent and the path holds)."""
        cnt = dict(st.counters)
        online0 = is_online(env.nodes, t0)
        # slot 0: the periodic (proactive) send; slots 1..R: reactive sends of the token account
        ts0 = st.next_gossip
        fire = ts0 < t1
        active = fire & is_online(env.nodes, ts0) & eligible & enabled
        go = jax.random.uniform(jax.random.fold_in(key, 2), (n,)) < proactive_prob(st.tokens, tspec)
        tokens = jnp.where(active & ~go, st.tokens + 1.0, st.tokens)
        want = [active & go] + [
            (st.react > j) & online0 & eligible & enabled for j in range(n_slots - 1)
        ]
        times = [ts0] + [jnp.broadcast_to(t0, (n,))] * (n_slots - 1)
        if cyclon:  # views maintained by the simulation: one shuffle round per gossip period
            view = jax.lax.cond(
                st.quantum % every == 0,
                lambda v: cyclon_shuffle(v, jax.random.fold_in(key, 5), online0, spec.shuffle_len),
                lambda v: v,
                st.cyclon,
            )
            st = st.replace(cyclon=view)
            peers = [
                cyclon_sample(view, jax.random.fold_in(key, 0 if j == 0 else 100 + j), online0)
                for j in range(n_slots)
            ]
        else:
            peers = [
                sampler(jax.random.fold_in(key, 0 if j == 0 else 100 + j), online0, st.quantum)
                for j in range(n_slots)
            ]
        sender = jnp.tile(ids(), n_slots)  # [S*N] message m = slot * N + sender
        ts = jnp.concatenate(times)
        peer = jnp.concatenate(peers)
        send = jnp.concatenate(want) & (peer >= 0)
        r = jnp.where(send, peer, 0)
        rate = jnp.minimum(env.up_kbps[sender], env.down_kbps[r]) * 1024.0
        arrive = ts + msg_bits / rate
        path = (
            send
            & online_during(rows(env.nodes, sender), ts, arrive)
            & online_during(rows(env.nodes, r), ts, arrive)
        )
        period = spec.period_s
        nxt = jnp.where(fire, ts0 + period * jnp.ceil((t1 - ts0) / period), ts0)
        cnt["messages_sent"] += send.sum().astype(jnp.float32)
        cnt["messages_lost"] += (send & ~path).sum().astype(jnp.float32)
        cnt["bytes_up"] += msg_bits / 8.0 * send.sum()
        e_up = jnp.where(send, env.e_up_j[sender], 0.0)
        cnt["energy_radio_j"] += e_up.sum()
        cnt["energy_wasted_j"] += jnp.where(send & ~path, e_up, 0.0).sum()
        mpart = jax.random.randint(jax.random.fold_in(key, 4), (nm,), 0, n_part)
        if n_part > 1:
            m_age = st.part_age[sender, mpart]
        else:
            m_age = st.age[sender]
        msgs = InFlight(
            valid=path,
            sender=sender,
            receiver=r,
            slot=jnp.arange(nm, dtype=jnp.int32) // n,
            arrive=arrive,
            age=m_age,
            part=mpart,
            seed=jax.random.bits(jax.random.fold_in(key, 1), (nm,), jnp.uint32),
            params=None,
        )
        st = st.replace(next_gossip=nxt, tokens=tokens, counters=cnt)
        return st, msgs

    def post(st: GossipState, msgs: InFlight, t1):
        """(B'): puts every message sent this quantum whose path holds into the buffer with a
        copy of its payload (the sender's model after (A)), in message order, so (C) reads no
        node model it may already have merged. With an explicit `inflight_cap` a message still
        on the wire at t1 is lost (`messages_overflow`) when the cap's messages on the wire
        after this quantum are taken by earlier ones; the buffer also has room for this
        quantum's deliveries (`gossip_capacity`)."""
        cnt = dict(st.counters)
        buf = st.inflight
        keep = msgs.valid
        if cap_logical > 0:
            wire = keep & (msgs.arrive >= t1)
            on_wire = (buf.valid & (buf.arrive >= t1)).sum()
            rank = jnp.cumsum(wire.astype(jnp.int32)) - 1
            over = wire & (rank >= cap_logical - on_wire)
            keep = keep & ~over
            cnt["messages_overflow"] += over.sum().astype(jnp.float32)
            cnt["messages_lost"] += over.sum().astype(jnp.float32)

        def payload(idx):
            return take_rows(st.params, msgs.sender[idx]) if spec.train else None

        buf, lost_full = store_all(buf, keep, msgs, payload, store_chunk)
        cnt["messages_overflow"] += lost_full
        cnt["messages_lost"] += lost_full
        return st.replace(inflight=buf, counters=cnt)

    def deliveries(env: GossipEnv, st: GossipState, key, t1, eligible):
        """(C): merges or queues every message in the buffer arriving before t1, frees them."""
        cnt = dict(st.counters)
        buf = st.inflight
        k = capacity_of(buf)
        sender, r, arrive, slot = buf.sender, buf.receiver, buf.arrive, buf.slot
        m_age, m_part, m_seed = buf.age, buf.part, buf.seed
        due = buf.valid & (arrive < t1)
        ok = due & eligible[r]
        cnt["messages_lost"] += (due & ~ok).sum().astype(jnp.float32)
        cnt["energy_wasted_j"] += jnp.where(due & ~ok, env.e_up_j[sender], 0.0).sum()
        cnt["bytes_down"] += msg_bits / 8.0 * ok.sum()
        cnt["energy_radio_j"] += jnp.where(ok, env.e_down_j[r], 0.0).sum()
        # candidates in (arrival time, sender id, slot) order; per receiver the first and last
        mids = jnp.arange(k, dtype=jnp.int32)
        order = jnp.lexsort((mids, slot, sender, jnp.where(ok, arrive, jnp.inf)))
        pos = jnp.zeros((k,), jnp.int32).at[order].set(mids)
        dest = jnp.where(ok, r, n)
        first = jnp.full((n,), k, jnp.int32).at[dest].min(pos, mode="drop")
        last = jnp.full((n,), -1, jnp.int32).at[dest].max(pos, mode="drop")
        got = first < k
        m_first = order[jnp.minimum(first, k - 1)]
        m_last = order[jnp.maximum(last, 0)]
        like = buf.params

        def of(m_rows):
            return lambda idx: take_rows(buf.params, m_rows[jnp.minimum(idx, n - 1)])

        def mask_of(m_rows):
            def masks(idx):
                m = m_rows[jnp.minimum(idx, n - 1)]
                return message_mask(m_part[m], m_seed[m], like)

            return masks

        idle = ~st.training
        take = got & idle
        p_first, p_last = m_part[m_first], m_part[m_last]
        params, age, part_age = merge_into(
            st, of(m_first), m_age[m_first], mask_of(m_first), take, p_first
        )
        queue = got & (~idle | (last != first))
        p = ib.rows_in(st.inbox)
        slot = st.inbox_slot
        if spec.train:  # a row of the inbox pool for every node that queues and holds none
            slot, over = ib.claim(slot, queue, p)
            cnt["inbox_overflow"] += over.sum().astype(jnp.float32)
            queue = queue & ~over
        if spec.queue == "all":  # merge all queued models (dl.engine.inbox.merge_all)
            extra = ok & ~(take[r] & (mids == m_first[r]))
            inbox, inbox_age = ib.merge_all(
                st.inbox, slot, queue, st.has_inbox, st.inbox_age, extra, dest, order, m_age,
                buf.params,
            )  # fmt: skip
        else:
            inbox = st.inbox
            if spec.train:
                inbox = ib.write(inbox, slot, queue, r_chunk, of(m_last))
            inbox_age = jnp.where(queue, m_age[m_last], st.inbox_age)
        inbox_mask = st.inbox_mask
        if inbox_mask is not None and spec.train:
            inbox_mask = ib.write(inbox_mask, slot, queue, r_chunk, mask_of(m_last))
        # the token account reacts to every node that received a (useful) model
        react = reactive_count(jax.random.fold_in(key, 3), st.tokens, tspec)
        react = jnp.where(got, react, 0)
        st = st.replace(
            params=params,
            age=age,
            inbox=inbox,
            inbox_slot=slot,
            inbox_age=inbox_age,
            inbox_mask=inbox_mask,
            inbox_part=jnp.where(queue, p_last, st.inbox_part),
            part_age=part_age,
            has_inbox=st.has_inbox | queue,
            dirty=st.dirty | take,
            tokens=st.tokens - react.astype(jnp.float32),
            react=react,
            inflight=buf.replace(valid=buf.valid & ~due),
            counters=cnt,
        )
        return start_training(env, st, take, t1)

    def step(st: GossipState, key, eligible, enabled=True, env: GossipEnv | None = None):
        """One quantum; `enabled=False` (traced ok) finishes trainings and delivers messages
        already on the wire, but sends nothing. `env`: the node arrays (a jitted caller passes
        its argument; None uses the factory's, compiled in as constants)."""
        env = env0 if env is None else env
        if capacity_of(st.inflight) < need:
            raise ConfigError(
                f"the gossip state's in-flight buffer holds {capacity_of(st.inflight)} messages, "
                f"{need} may be on the wire: build it with init_gossip(..., capacity="
                "gossip_capacity(spec, env, model_bytes))"
            )
        t0 = st.quantum.astype(jnp.float32) * q
        t1 = (st.quantum + 1).astype(jnp.float32) * q
        due = (st.training & (st.train_end < t1)).any()
        # a loop of 0 or 1 trips, not a cond: XLA copies the node models out of a cond's
        # pass-through branch, a while loop updates them in place
        st = jax.lax.fori_loop(
            0,
            due.astype(jnp.int32),
            lambda _, s: completions(env, s, jax.random.fold_in(key, 0), t1),
            st,
        )
        qkey = jax.random.fold_in(jax.random.fold_in(key, 1), st.quantum)
        st, msgs = sends(env, st, qkey, t0, t1, eligible, enabled)
        st = post(st, msgs, t1)
        st = deliveries(env, st, qkey, t1, eligible)
        return st.replace(quantum=st.quantum + 1)

    step.capacity = need
    return step


def rows(av: Availability, idx):
    return Availability(times=av.times[idx], first_online=av.first_online[idx])


def make_gossip_chunk(apply_fn, train, spec: GossipSpec, env: GossipEnv, model_bytes, strategy):
    """Jitted `chunk(state, key, t_stop) -> state` for pure gossip learning (a state built
    without a capacity has its in-flight buffer grown to `gossip_capacity` first)."""
    step = make_gossip_quantum(apply_fn, train, spec, env, model_bytes, strategy)
    q = spec.quantum_s

    def chunk(env: GossipEnv, state, key, t_stop):
        state = state.replace(inflight=grow(state.inflight, step.capacity))
        everyone = jnp.ones(env.counts.shape, bool)

        def cond(st):
            return st.quantum.astype(jnp.float32) * q < t_stop

        return jax.lax.while_loop(cond, lambda st: step(st, key, everyone, env=env), state)

    return EnvChunk(chunk, env, "gossip_chunk")
