"""Synchronous FedAvg in virtual time, with FedScale's round semantics.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017) for the algorithm; Lai et al., "FedScale" (ICML 2022), `tictak_client_tasks`, for
the timing: each round samples ceil(1.3 K) online clients, drops those that will not stay online
until they finish, keeps the K fastest by `t_client = t_comp + t_comm` and lasts until the K-th
finishes. Stragglers are not trained (their results would be discarded) but their download is
counted. The server applies an optax optimizer to the pseudo-gradient (FedAvg/FedAvgM/FedAdam).

Upload compression (`upload_frac = s`, ALGORITHMS.md §1.4): a client uploads a fraction s of its
delta, so with an EnergyEnv its upload time and upload transfer energy are s times the full
model's (`t_client` loses `(1 - s) t_up`), and s x model bytes are counted per upload. Without an
EnergyEnv, `NodeEnv.t_client` is used as given and must already hold the compressed upload.

Server rules (`server_rule`, ALGORITHMS.md §1.5; Hegedus, Danner, Jelasity, DAIS 2019 / JPDC
2021, read from the authors' simulator, ormandi/Gossip-Learning-Framework branch `privacy`):
- `weighted` (default): example-weighted mean (McMahan et al.); with s < 1 each coordinate is
  sent with probability s and averaged over the clients that sent it.
- `dais` (`FederatedLearning.java` / `SlimLogReg.getModelPart`, Feb. 2019): per output column
  of every weight matrix a client sends m = floor(s d) of the d weights (uniform, without
  replacement) scaled by d / m (= 1/s when s d is an integer), the bias always and unscaled;
  the master adds the plain mean (coefficient 1 / received) of the sparse deltas.
- `jpdc` (the same file, Dec. 2020): the same masks, unscaled; per weight coordinate the mean
  over the clients that sent it times 1 / (1 - (1 - m/d)^n), n = received; bias plain mean.
A leaf with >= 2 axes is a weight matrix whose last axis is the output (class) axis; a leaf with
0 or 1 axes is a bias. Both new rules ignore the example counts (the papers' clients are equal).

A chunk of rounds is one jitted `lax.while_loop` that stops at a virtual-time target, so the
host loop only runs once per evaluation.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dl.algorithms.server_opt import ServerOptSpec, make_server_optimizer
from dl.errors import ConfigError
from dl.train.local import LocalTrainSpec, make_batch_train, node_keys


@dataclass(frozen=True)
class FedAvgSpec:
    clients_per_round: int = 10  # K
    overcommit: float = 1.3  # sample ceil(overcommit * K) online clients
    idle_wait_s: float = 60.0  # clock step when no client can be scheduled
    upload_frac: float = 1.0  # upload compression: random fraction of delta coordinates sent
    server_rule: str = "weighted"  # [weighted, dais, jpdc] (module doc)
    server_opt: ServerOptSpec = ServerOptSpec()


SERVER_RULES = ("weighted", "dais", "jpdc")


@struct.dataclass
class FedAvgState:
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
    """Per-node arrays an algorithm closes over (device arrays, node axis first)."""

    x: Any  # [N, M, ...] examples
    y: Any  # [N, M, ...] labels
    counts: Any  # [N] i32 real examples per node
    t_client: Any  # [N] f32 seconds for one download + training session + upload
    online: Callable  # t [] -> [N] bool
    online_until: Callable  # (t0 [], t1 [N]) -> [N] bool, online during all of [t0, t1]
    energy: Any = None  # optional EnergyEnv: per-node J for compute / radio (dl.sim.energy_env)


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


def sent_count(d: int, s: float) -> int:
    """Weights per output column a client sends: floor(s d), at least 1 (DAIS 2019 code)."""
    return max(1, min(d, math.floor(s * d + 1e-9)))


def fixed_count_masks(key, like, s: float):
    """[K, ...] bool masks over client-stacked leaves: for a weight leaf [K, ..., C] (>= 2 axes
    after K) exactly `sent_count(d, s)` of the d weights of every (client, column), uniform
    without replacement; bias leaves ([K] or [K, C]) all True."""
    leaves, tdef = jax.tree.flatten(like)
    out = []
    for i, x in enumerate(leaves):
        if x.ndim < 3:
            out.append(jnp.ones(x.shape, bool))
            continue
        k, c = x.shape[0], x.shape[-1]
        d = math.prod(x.shape[1:-1])
        u = jax.random.uniform(jax.random.fold_in(key, i), (k, d, c))
        rank = jnp.argsort(jnp.argsort(u, axis=1), axis=1)  # [K, d, C] rank within a column
        out.append((rank < sent_count(d, s)).reshape(x.shape))
    return jax.tree.unflatten(tdef, out)


def sparse_mean_delta(deltas, masks, ok, rule: str, s: float):
    """The master's step from the clients' deltas (local - global) [K, ...] under `rule`
    (`dais` or `jpdc`, module doc); `ok` [K] bool marks the clients whose upload arrived."""
    n = jnp.maximum(ok.sum(), 1).astype(jnp.float32)

    def leaf(dx, m):
        live = ok.reshape((-1,) + (1,) * (dx.ndim - 1))
        sent = m & live  # [K, ...]
        if dx.ndim < 3:  # bias: always sent, plain mean
            return jnp.where(live, dx, 0.0).sum(0) / n
        d = math.prod(dx.shape[1:-1])
        frac = sent_count(d, s) / d
        if rule == "dais":
            return jnp.where(sent, dx / frac, 0.0).sum(0) / n
        got = sent.sum(0)  # [...] clients that sent each coordinate
        mean = jnp.where(sent, dx, 0.0).sum(0) / jnp.maximum(got, 1)
        return mean / (1.0 - (1.0 - frac) ** n)

    return jax.tree.map(leaf, deltas, masks)


def init_fedavg(params, spec: FedAvgSpec) -> FedAvgState:
    tx = make_server_optimizer(spec.server_opt)
    z = jnp.zeros((), jnp.float32)
    energy = {k: z for k in ENERGY_KEYS}
    i = jnp.zeros((), jnp.int32)
    return FedAvgState(params, tx.init(params), z, i, z, z, z, i, energy)


def make_fedavg_chunk(
    apply_fn, train: LocalTrainSpec, spec: FedAvgSpec, env: NodeEnv, model_bytes: int, strategy: str
):
    """Returns jitted `chunk(state, key, t_stop) -> state`: rounds until clock >= t_stop."""
    n = int(env.counts.shape[0])
    k = spec.clients_per_round
    if not 1 <= k <= n:
        raise ConfigError(f"algorithm.clients_per_round must be in [1, {n}] (num_nodes), got {k}")
    if not 0.0 < spec.upload_frac <= 1.0:
        raise ConfigError(f"algorithm.upload_frac must be in (0, 1], got {spec.upload_frac}")
    if spec.overcommit < 1.0:
        raise ConfigError(f"algorithm.overcommit must be >= 1, got {spec.overcommit}")
    if spec.server_rule not in SERVER_RULES:
        raise ConfigError(
            f"unknown algorithm.server_rule '{spec.server_rule}' ({', '.join(SERVER_RULES)})"
        )
    s = min(n, math.ceil(spec.overcommit * k - 1e-9))
    tx = make_server_optimizer(spec.server_opt)
    batch_train = make_batch_train(apply_fn, train, strategy)
    mb = jnp.float32(model_bytes)
    energy, t_client = env.energy, env.t_client  # [N] f32 s per download-train-upload
    if energy is not None and spec.upload_frac < 1.0:
        t_client = t_client - (1.0 - spec.upload_frac) * energy.t_up
        energy = energy.upload_scaled(spec.upload_frac)

    def round_fn(state: FedAvgState, key) -> FedAvgState:
        rkey = jax.random.fold_in(key, state.round)
        online = env.online(state.clock)
        score = jnp.where(online, jax.random.uniform(jax.random.fold_in(rkey, 0), (n,)), -1.0)
        top, sampled = jax.lax.top_k(score, s)  # [S]
        tc = t_client[sampled]
        ok = (top >= 0) & env.online_until(state.clock, state.clock + t_client)[sampled]
        order = jnp.argsort(jnp.where(ok, tc, jnp.inf))[:k]  # K fastest that finish
        chosen, chosen_ok, chosen_t = sampled[order], ok[order], tc[order]
        n_ok = chosen_ok.sum()
        duration = jnp.where(
            n_ok > 0, jnp.max(jnp.where(chosen_ok, chosen_t, 0.0)), spec.idle_wait_s
        )

        start = jax.tree.map(lambda p: jnp.broadcast_to(p, (k,) + p.shape), state.params)
        keys = node_keys(jax.random.fold_in(rkey, 1), jnp.zeros((), jnp.int32), chosen)
        counts = env.counts[chosen]
        # the server model's age (SGD steps along its lineage; ALGORITHMS.md §1.5) is rounds x
        # local steps; it clocks lr_schedule=pegasos and is ignored by a constant lr
        age = jnp.broadcast_to(state.round.astype(jnp.float32) * train.local_steps, (k,))
        new, loss = batch_train(start, env.x[chosen], env.y[chosen], counts, chosen_ok, keys, age)
        w = jnp.where(chosen_ok, counts, 0).astype(jnp.float32)
        wsum = jnp.maximum(w.sum(), 1.0)
        if spec.server_rule != "weighted":
            deltas = jax.tree.map(lambda x, p: x - p, new, state.params)
            masks = fixed_count_masks(jax.random.fold_in(rkey, 2), new, spec.upload_frac)
            step = sparse_mean_delta(deltas, masks, chosen_ok, spec.server_rule, spec.upload_frac)
            pseudo_grad = jax.tree.map(lambda a: -a, step)
        elif spec.upload_frac < 1.0:
            # each client uploads a random coordinate subset of its delta (Konecny et al.
            # 2016; Hegedus et al. 2019 compress FL uploads this way); the server averages
            # each coordinate over the clients that sent it
            mkey = jax.random.fold_in(rkey, 2)
            leaves, tdef = jax.tree.flatten(new)
            masks = jax.tree.unflatten(
                tdef,
                [
                    jax.random.bernoulli(jax.random.fold_in(mkey, i), spec.upload_frac, x.shape)
                    for i, x in enumerate(leaves)
                ],
            )

            def coord_avg(p, x, m):
                wm = m * w.reshape((-1,) + (1,) * (x.ndim - 1))
                tot = wm.sum(0)
                got = (wm * (p - x)).sum(0) / jnp.where(tot > 0, tot, 1.0)
                return jnp.where(tot > 0, got, 0.0)

            pseudo_grad = jax.tree.map(
                lambda p, x, m: coord_avg(p, x, m.astype(jnp.float32)), state.params, new, masks
            )
        else:
            avg = jax.tree.map(lambda p: jnp.tensordot(w, p, axes=1) / wsum, new)
            pseudo_grad = jax.tree.map(lambda p, a: p - a, state.params, avg)
        updates, opt_state = tx.update(pseudo_grad, state.opt_state, state.params)
        params = jax.tree.map(lambda p, u: p + u, state.params, updates)
        any_ok = n_ok > 0
        params = jax.tree.map(lambda a, b: jnp.where(any_ok, a, b), params, state.params)
        opt_state = jax.tree.map(lambda a, b: jnp.where(any_ok, a, b), opt_state, state.opt_state)
        return FedAvgState(
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

    @jax.jit
    def chunk(state: FedAvgState, key, t_stop, max_rounds):
        def cond(c):
            st, i = c
            return (st.clock < t_stop) & (i < max_rounds)

        def body(c):
            st, i = c
            return round_fn(st, key), i + 1

        state, _ = jax.lax.while_loop(cond, body, (state, jnp.zeros((), jnp.int32)))
        return state

    return chunk
