"""Gossip learning (Ormándi, Hegedűs, Jelasity, CCPE 2013; Hegedűs et al., DAIS 2019) on the
gossip clock: every `period_s` an online node sends its model to a peer, which merges it on
arrival (`dl.rules.gossip_merge`) and trains; the token account (`dl.rules.token_account`)
shapes the flow. Clock: `dl.engine.gossip_clock`. `gossip_parts` also serves DWA.
"""

import jax.numpy as jnp

from dl import rng
from dl.algorithms.base import Algorithm, Runner, drain_counters, quantum_clock
from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_chunk,
)
from dl.engine.inbox import pool_size
from dl.errors import ConfigError
from dl.rules.gossip_merge import MergeSpec
from dl.rules.token_account import TokenSpec

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
    "inbox_cap",
)
TOKEN_KEYS = ("flow", "capacity", "reactivity", "max_reactive")
MERGE_KEYS = ("merge", "merge_limit", "age_rule")


def gossip_parts(cfg: dict, alg: dict, world):
    """(GossipSpec, GossipEnv) of an `algorithm` config on `world` (a dl.build.Built)."""
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
    e, p = world.energy.message_scaled(spec.sample_frac / spec.partitions), world.profiles
    env = GossipEnv(
        x=world.env.x,
        y=world.env.y,
        counts=world.env.counts,
        t_comp=e.t_comp,
        up_kbps=jnp.asarray(p.up_kbps, jnp.float32),
        down_kbps=jnp.asarray(p.down_kbps, jnp.float32),
        power_w=e.power_w,
        e_up_j=e.e_up_j,
        e_down_j=e.e_down_j,
        nodes=world.availability,
    )
    return spec, env


def init_gossip_state(cfg: dict, world, spec: GossipSpec, env: GossipEnv):
    """The initial gossip state of every node (stream `rng.GOSSIP_INIT` of the run seed)."""
    n = int(world.env.counts.shape[0])
    cap = gossip_capacity(spec, env, world.model_bytes)
    pool = pool_size(n, spec.inbox_cap, env.nodes, env.t_comp, spec.quantum_s, spec.train)
    key = rng.key(cfg["seed"], rng.GOSSIP_INIT)
    return init_gossip(world.params, n, spec, key, cap, pool)


def node_gauges(g, n_real: int) -> dict:
    """Age gauges of a gossip state over the real (unpadded) nodes."""
    return {"age_mean": float(g.age[:n_real].mean()), "age_max": float(g.age.max())}


def make_gossip_runner(cfg: dict, world, strategy: str) -> Runner:
    alg = dict(cfg["algorithm"])
    extra = set(alg) - {"name", "quantum_s"} - set(GOSSIP_KEYS + MERGE_KEYS + TOKEN_KEYS)
    if extra:
        raise ConfigError(f"unknown keys in algorithm (gossip): {sorted(extra)}")
    spec, env = gossip_parts(cfg, alg, world)
    chunk = make_gossip_chunk(world.apply, world.train, spec, env, world.model_bytes, strategy)
    q = spec.quantum_s

    def gauges(st):
        return {
            "round": int(st.quantum),
            **node_gauges(st, world.n_real),
            "nodes_training": int(st.training.sum()),
        }

    return Runner(
        init_gossip_state(cfg, world, spec, env),
        chunk,
        lambda st: quantum_clock(st.quantum, q),
        lambda st: None,
        drain_counters,
        gauges,
        node_params=lambda st: st.params,
    )


ALGORITHM = Algorithm("gossip", "gossip", make_gossip_runner)
