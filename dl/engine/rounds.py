"""The synchronous-rounds engine: FedScale's round semantics in virtual time.

Lai et al., "FedScale" (ICML 2022), `tictak_client_tasks`: each round samples ceil(overcommit K)
online clients, drops those that will not stay online until they finish, keeps the K fastest by
`t_client = t_comp + t_comm` and lasts until the K-th finishes. Stragglers are not trained but
their download and partial training are counted (wasted energy). The aggregation rule and the
server optimizer come from the algorithm (`dl.algorithms.fedavg`). A chunk of rounds is one
jitted `lax.while_loop` that stops at a virtual-time target; the node arrays are arguments of
that program, not constants (`dl.engine.jitted`); the state (one server model) is not donated.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dl.engine.jitted import EnvChunk
from dl.traces.availability import Availability, is_online, online_during
from dl.train.local import LocalTrainSpec, make_batch_train, node_keys


@struct.dataclass
class RoundsState:
    params: Any  # server model pytree
    opt_state: Any  # server optimizer state
    clock: jnp.ndarray  # [] f32 virtual seconds
    round: jnp.ndarray  # [] i32 completed rounds
    bytes_up: jnp.ndarray  # [] f32 bytes uploaded since the host last drained it
    bytes_down: jnp.ndarray  # [] f32 bytes downloaded since the host last drained it
    train_loss: jnp.ndarray  # [] f32 mean local loss of the last round
    clients: jnp.ndarray  # [] i32 clients aggregated in the last round
    energy: dict  # name -> [] f32 joules since the host last drained them


@dataclass(frozen=True)
class NodeEnv:
    """Per-node arrays of an algorithm (device arrays, node axis first). With `avail` the
    engine queries it (`is_online` / `online_during`) inside its program, and `online` /
    `online_until` are not used; without it they are called, and what they close over is
    compiled into the program as constants."""

    x: Any  # [N, M, ...] examples
    y: Any  # [N, M, ...] labels
    counts: Any  # [N] i32 real examples per node
    t_client: Any  # [N] f32 seconds for one download + training session + upload
    online: Callable | None = None  # t [] -> [N] bool
    online_until: Callable | None = None  # (t0 [], t1 [N]) -> [N] bool, online during [t0, t1]
    energy: Any = None  # optional EnergyEnv: per-node J for compute / radio (dl.devices.energy_env)
    avail: Availability | None = None  # the nodes' timeline (an argument of the program)

    def arrays(self) -> dict:
        """The node arrays as a pytree (the argument of the jitted chunk)."""
        e = self.energy
        return {
            "x": self.x,
            "y": self.y,
            "counts": self.counts,
            "t_client": self.t_client,
            "energy": None if e is None else {f: getattr(e, f) for f in e.__dataclass_fields__},
            "avail": self.avail,
        }


ENERGY_KEYS = ("energy_compute_j", "energy_radio_j", "energy_wasted_j")


def round_energy(acc: dict, e, sampled, ok, chosen, chosen_ok, duration) -> dict:
    """Adds one round's joules: the K kept clients download, train and upload; stragglers that
    were sampled but not kept download and train until the round ends, wasted."""
    if e is None:
        return acc
    kept = jnp.isin(sampled, jnp.where(chosen_ok, chosen, -1)) & ok
    strag = ok & ~kept
    ran = jnp.clip(duration - e.t_down[sampled], 0.0, e.t_comp[sampled])
    comp = e.power_w[sampled] * jnp.where(kept, e.t_comp[sampled], jnp.where(strag, ran, 0.0))
    radio = jnp.where(ok, e.e_down_j[sampled], 0.0) + jnp.where(kept, e.e_up_j[sampled], 0.0)
    wasted = jnp.where(strag, comp + e.e_down_j[sampled], 0.0)
    return {
        "energy_compute_j": acc["energy_compute_j"] + comp.sum(),
        "energy_radio_j": acc["energy_radio_j"] + radio.sum(),
        "energy_wasted_j": acc["energy_wasted_j"] + wasted.sum(),
    }


def make_rounds_chunk(
    apply_fn,
    train: LocalTrainSpec,
    spec,
    env: NodeEnv,
    model_bytes: int,
    strategy: str,
    aggregate: Callable,
    tx,
):
    """Jitted `chunk(state, key, t_stop, max_rounds) -> state`: rounds until clock >= t_stop.
    spec: clients_per_round K, overcommit, idle_wait_s, upload_frac s (time/energy/bytes of an
    upload scale by s). aggregate(params, new [K, ...], w [K] f32, ok [K] bool, rkey) -> the
    pseudo-gradient pytree; tx: the optax server optimizer applied to it."""
    n = int(env.counts.shape[0])
    k = spec.clients_per_round
    s = min(n, math.ceil(spec.overcommit * k - 1e-9))
    batch_train = make_batch_train(apply_fn, train, strategy)
    mb = jnp.float32(model_bytes)
    energy_type = None if env.energy is None else type(env.energy)

    def prepare(d: dict):
        """(energy, t_client [N] f32 s per download-train-upload) of the node arrays `d`."""
        energy, t_client = None, d["t_client"]
        if energy_type is not None:
            energy = energy_type(**d["energy"])
        if energy is not None and spec.upload_frac < 1.0:
            t_client = t_client - (1.0 - spec.upload_frac) * energy.t_up
            energy = energy.upload_scaled(spec.upload_frac)
        return energy, t_client

    def online(d: dict, t):
        return env.online(t) if d["avail"] is None else is_online(d["avail"], t)

    def online_until(d: dict, t0, t1):
        return env.online_until(t0, t1) if d["avail"] is None else online_during(d["avail"], t0, t1)

    def round_fn(d: dict, energy, t_client, state: RoundsState, key) -> RoundsState:
        rkey = jax.random.fold_in(key, state.round)
        online_now = online(d, state.clock)
        score = jnp.where(online_now, jax.random.uniform(jax.random.fold_in(rkey, 0), (n,)), -1.0)
        top, sampled = jax.lax.top_k(score, s)  # [S]
        tc = t_client[sampled]
        ok = (top >= 0) & online_until(d, state.clock, state.clock + t_client)[sampled]
        order = jnp.argsort(jnp.where(ok, tc, jnp.inf))[:k]  # K fastest that finish
        chosen, chosen_ok, chosen_t = sampled[order], ok[order], tc[order]
        n_ok = chosen_ok.sum()
        duration = jnp.where(
            n_ok > 0, jnp.max(jnp.where(chosen_ok, chosen_t, 0.0)), spec.idle_wait_s
        )

        start = jax.tree.map(lambda p: jnp.broadcast_to(p, (k,) + p.shape), state.params)
        keys = node_keys(jax.random.fold_in(rkey, 1), jnp.zeros((), jnp.int32), chosen)
        counts = d["counts"][chosen]
        # the server model's age (SGD steps along its lineage; ALGORITHMS.md §1.5) is rounds x
        # local steps; it clocks lr_schedule=pegasos and is ignored by a constant lr
        age = jnp.broadcast_to(state.round.astype(jnp.float32) * train.local_steps, (k,))
        new, loss = batch_train(start, d["x"], d["y"], counts, chosen_ok, keys, age, chosen)
        w = jnp.where(chosen_ok, counts, 0).astype(jnp.float32)
        wsum = jnp.maximum(w.sum(), 1.0)
        pseudo_grad = aggregate(state.params, new, w, chosen_ok, rkey)
        updates, opt_state = tx.update(pseudo_grad, state.opt_state, state.params)
        params = jax.tree.map(lambda p, u: p + u, state.params, updates)
        any_ok = n_ok > 0
        params = jax.tree.map(lambda a, b: jnp.where(any_ok, a, b), params, state.params)
        opt_state = jax.tree.map(lambda a, b: jnp.where(any_ok, a, b), opt_state, state.opt_state)
        return RoundsState(
            params=params,
            opt_state=opt_state,
            clock=state.clock + duration,
            round=state.round + any_ok.astype(jnp.int32),
            bytes_up=state.bytes_up + mb * spec.upload_frac * n_ok,
            bytes_down=state.bytes_down + mb * ok.sum(),
            train_loss=jnp.where(any_ok, (loss * w).sum() / wsum, state.train_loss),
            clients=n_ok.astype(jnp.int32),
            energy=round_energy(state.energy, energy, sampled, ok, chosen, chosen_ok, duration),
        )

    def chunk(d: dict, state: RoundsState, key, t_stop, max_rounds):
        energy, t_client = prepare(d)

        def cond(c):
            st, i = c
            return (st.clock < t_stop) & (i < max_rounds)

        def body(c):
            st, i = c
            return round_fn(d, energy, t_client, st, key), i + 1

        state, _ = jax.lax.while_loop(cond, body, (state, jnp.zeros((), jnp.int32)))
        return state

    # not donated: the state is one server model, and `init_fedavg` holds the caller's params
    return EnvChunk(chunk, env.arrays(), "rounds_chunk", donate=False)
