"""Adapters that give every algorithm the same face for the host loop: init, run a chunk up to a
virtual time, read the server model, drain counters, report gauges."""

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl.algorithms.fedavg import FedAvgSpec, init_fedavg, make_fedavg_chunk
from dl.build import Built, server_opt_spec
from dl.devices.server import build_server
from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async, make_async_chunk
from dl.engine.async_server import AsyncServerSpec, staleness_mean
from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_chunk,
)
from dl.engine.hybrid import DWASpec, init_dwa, make_dwa_chunk
from dl.errors import ConfigError
from dl.rules.gossip_merge import MergeSpec
from dl.rules.token_account import TokenSpec

ALGORITHMS = ("fedavg", "fedasync", "fedbuff", "gossip", "dwa")


def _pick(d: dict, cls, where: str, skip=()) -> Any:
    fields = set(cls.__dataclass_fields__)
    extra = set(d) - fields - set(skip)
    if extra:
        raise ConfigError(f"unknown keys in {where}: {sorted(extra)}")
    return {k: v for k, v in d.items() if k in fields and k not in skip}


def quantum_clock(quantum, q: float) -> float:
    """Virtual time of a quantum counter, in the engines' own float32 arithmetic
    (`quantum.astype(f32) * q`, their stop test): a float64 product can fall just short of an
    evaluation time the engine has reached (57 x 7.543859649 = 430.0 in float32, 429.99999999
    in float64), and the host loop then called empty chunks forever."""
    return float(np.float32(quantum) * np.float32(q))


@dataclass
class Runner:
    init: Any
    chunk: Any  # (state, key, t_stop) -> state
    clock: Any  # state -> float
    params: Any  # state -> server params
    drain: Any  # state -> (state, {counter: float})
    gauges: Any  # state -> dict
    node_params: Any = None  # state -> pytree [N, ...] node models (gossip, dwa)


def make_runner(cfg: dict, b: Built, strategy: str) -> Runner:
    alg = dict(cfg["algorithm"])
    name = alg.get("name")
    if name not in ALGORITHMS:
        options = ", ".join(ALGORITHMS)
        raise ConfigError(f"unknown algorithm '{name}' (choose from: {options})")
    if name == "fedavg":
        return _fedavg_runner(cfg, alg, b, strategy)
    if name in ("gossip", "dwa"):
        return _gossip_runner(cfg, alg, b, strategy)
    return _async_runner(cfg, alg, b, strategy)


def _fedavg_runner(cfg, alg, b: Built, strategy) -> Runner:
    if cfg["server"].get("kind", "always") != "always":
        raise ConfigError("algorithm=fedavg supports only server=always (use fedasync/fedbuff)")
    if not cfg["sim"].get("train", True):
        raise ConfigError("sim.train=false (system-only mode) needs algorithm=fedasync/fedbuff")
    spec = FedAvgSpec(
        **_pick(alg, FedAvgSpec, "algorithm (fedavg)", skip=("name", "server_opt")),
        server_opt=server_opt_spec(alg),
    )
    chunk = make_fedavg_chunk(b.apply, b.train, spec, b.env, b.model_bytes, strategy)
    max_rounds = cfg["sim"].get("max_rounds") or np.iinfo(np.int32).max

    def run(st, key, t_stop):
        left = max(0, max_rounds - int(st.round))
        return chunk(st, key, jnp.float32(t_stop), jnp.int32(left))

    def drain(st):
        out = {"bytes_up": float(st.bytes_up), "bytes_down": float(st.bytes_down)}
        out.update({k: float(v) for k, v in st.energy.items()})
        z = jnp.zeros((), jnp.float32)
        st = st.replace(bytes_up=z, bytes_down=z, energy={k: z for k in st.energy})
        return st, out

    def gauges(st):
        return {
            "round": int(st.round),
            "train_loss": float(st.train_loss),
            "clients_last_round": int(st.clients),
        }

    return Runner(
        init_fedavg(b.params, spec),
        run,
        lambda st: float(st.clock),
        lambda st: st.params,
        drain,
        gauges,
    )


ENG_KEYS = ("quantum_s", "concurrency", "max_arrivals")


def _async_parts(cfg, alg: dict, b: Built, kind: str, skip=()):
    sim, srv = cfg["sim"], dict(cfg["server"])
    where = f"algorithm ({alg['name']})"
    opts = _pick(alg, AsyncServerSpec, where, skip=("name",) + ENG_KEYS + tuple(skip))
    spec = AsyncServerSpec(**(opts | {"kind": kind}))
    eng = EngineSpec(
        **{k: alg[k] for k in ENG_KEYS if k in alg},
        upload_policy=srv.get("upload_policy", "lost"),
        train=bool(sim.get("train", True)),
    )
    e = b.energy
    env = AsyncEnv(
        x=b.env.x,
        y=b.env.y,
        counts=b.env.counts,
        t_down=e.t_down,
        t_comp=e.t_comp,
        t_up=e.t_up,
        power_w=e.power_w,
        e_down_j=e.e_down_j,
        e_up_j=e.e_up_j,
        nodes=b.availability,
        server=build_server(srv, float(sim["duration_s"]) + 86400.0, int(cfg["seed"])),
    )
    return spec, eng, env


def _async_runner(cfg, alg, b: Built, strategy) -> Runner:
    spec, eng, env = _async_parts(cfg, alg, b, alg["name"])
    chunk = make_async_chunk(b.apply, b.train, spec, eng, env, b.model_bytes, strategy)
    q = eng.quantum_s

    drain = _drain_counters

    def gauges(st):
        s = st.server
        hist = np.asarray(s.hist)
        mean_stale = float(staleness_mean(s))  # exact; the histogram clips its last bin
        return {
            "round": int(s.version),
            "updates_applied": int(s.applied),
            "updates_stale": int(s.stale_dropped),
            "nodes_training": int((st.slots.node >= 0).sum()),
            "staleness_mean": mean_stale,
            "staleness_hist": hist.tolist(),
        }

    n = int(b.env.counts.shape[0])
    return Runner(
        init_async(b.params, spec, eng, n),
        lambda st, key, t: chunk(st, key, t),
        lambda st: quantum_clock(st.quantum, q),
        lambda st: st.server.params,
        drain,
        gauges,
    )


GOSSIP_KEYS = (
    "period_s",
    "max_trainings",
    "sample_frac",
    "topology",
    "degree",
    "queue",
    "partitions",
    "shuffle_len",
    "inflight_cap",
)
TOKEN_KEYS = ("flow", "capacity", "reactivity", "max_reactive")
MERGE_KEYS = ("merge", "merge_limit", "age_rule")
DWA_KEYS = ("nu", "lam_max", "age_cap_steps", "server_kind")


def _gossip_parts(cfg, alg: dict, b: Built):
    sim = cfg["sim"]
    merge = MergeSpec(
        rule=alg.get("merge", "age"),
        limit=float(alg.get("merge_limit", 1.0)),
        age_rule=alg.get("age_rule", "max"),
    )
    spec = GossipSpec(
        **{k: alg[k] for k in GOSSIP_KEYS if k in alg},
        quantum_s=float(alg.get("quantum_s", 1.0)),
        merge=merge,
        node_dtype=str(sim.get("node_dtype", "float32")),
        token=TokenSpec(**{k: alg[k] for k in TOKEN_KEYS if k in alg}),
        train=bool(sim.get("train", True)),
        seed=int(cfg["seed"]),  # draws the k-regular overlay: a different graph per run seed
    )
    # radio joules per message: the carried fraction of the transfer, the burst overhead in full
    e, p = b.energy.message_scaled(spec.sample_frac / spec.partitions), b.profiles
    env = GossipEnv(
        x=b.env.x,
        y=b.env.y,
        counts=b.env.counts,
        t_comp=e.t_comp,
        up_kbps=jnp.asarray(p.up_kbps, jnp.float32),
        down_kbps=jnp.asarray(p.down_kbps, jnp.float32),
        power_w=e.power_w,
        e_up_j=e.e_up_j,
        e_down_j=e.e_down_j,
        nodes=b.availability,
    )
    return spec, env


def _gossip_runner(cfg, alg, b: Built, strategy) -> Runner:
    name = alg["name"]
    n = int(b.env.counts.shape[0])
    n_real = b.n_real
    gkey = jax.random.fold_in(jax.random.key(cfg["seed"]), 12345)
    if name == "gossip":
        extra = set(alg) - {"name", "quantum_s"} - set(GOSSIP_KEYS + MERGE_KEYS + TOKEN_KEYS)
        if extra:
            raise ConfigError(f"unknown keys in algorithm (gossip): {sorted(extra)}")
        spec, env = _gossip_parts(cfg, alg, b)
        chunk = make_gossip_chunk(b.apply, b.train, spec, env, b.model_bytes, strategy)
        q = spec.quantum_s
        init = init_gossip(b.params, n, spec, gkey, gossip_capacity(spec, env, b.model_bytes))

        def gauges(st):
            return {
                "round": int(st.quantum),
                "age_mean": float(st.age[:n_real].mean()),
                "age_max": float(st.age.max()),
                "nodes_training": int(st.training.sum()),
            }

        return Runner(
            init,
            chunk,
            lambda st: quantum_clock(st.quantum, q),
            lambda st: None,
            _drain_counters,
            gauges,
            node_params=lambda st: st.params,
        )
    skip = GOSSIP_KEYS + MERGE_KEYS + DWA_KEYS + TOKEN_KEYS
    aspec, eng, aenv = _async_parts(cfg, alg, b, alg.get("server_kind", "fedasync"), skip=skip)
    gspec, genv = _gossip_parts(cfg, alg, b)
    if gspec.partitions > 1:
        raise ConfigError("algorithm=dwa does not support partitioned subsampling (partitions=1)")
    dspec = DWASpec(**{k: alg[k] for k in ("nu", "lam_max", "age_cap_steps") if k in alg})
    chunk = make_dwa_chunk(
        b.apply, b.train, aspec, eng, gspec, dspec, aenv, genv, b.model_bytes, strategy
    )
    g0 = init_gossip(b.params, n, gspec, gkey, gossip_capacity(gspec, genv, b.model_bytes))
    init = init_dwa(init_async(b.params, aspec, eng, n), g0)
    q = eng.quantum_s

    def drain(d):
        fl, a = _drain_counters(d.fl)
        g, c = _drain_counters(d.g)
        for k, v in c.items():
            a[k] = a.get(k, 0.0) + v
        return d.replace(fl=fl, g=g), a

    def gauges(d):
        s = d.fl.server
        return {
            "round": int(s.version),
            "updates_applied": int(s.applied),
            "updates_stale": int(s.stale_dropped),
            "server_age": float(d.server_age),
            "age_mean": float(d.g.age[:n_real].mean()),
            "age_max": float(d.g.age.max()),
            "nodes_training": int((d.fl.slots.node >= 0).sum() + d.g.training.sum()),
        }

    return Runner(
        init,
        chunk,
        lambda d: quantum_clock(d.fl.quantum, q),
        lambda d: d.fl.server.params,
        drain,
        gauges,
        node_params=lambda d: d.g.params,
    )


def _drain_counters(st):
    out = {k: float(v) for k, v in st.counters.items()}
    return st.replace(counters={k: jnp.zeros_like(v) for k, v in st.counters.items()}), out
