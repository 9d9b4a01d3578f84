"""DWA, doubly weighted averaging (ALGORITHMS.md §3.2, our proposal) on the hybrid clock: the
async-FL engine while the server is up, gossip while it is down (`dl.engine.hybrid`); the rule
that weighs an upload by staleness and model age is `dl.rules.dwa`.
"""

from dl.algorithms.base import Algorithm, Runner, drain_counters, quantum_clock
from dl.algorithms.fedasync import async_parts, server_gauges
from dl.algorithms.gossip import (
    GOSSIP_KEYS,
    MERGE_KEYS,
    TOKEN_KEYS,
    gossip_parts,
    init_gossip_state,
    node_gauges,
)
from dl.engine.async_clock import init_async
from dl.engine.hybrid import init_dwa, make_dwa_chunk
from dl.errors import ConfigError
from dl.rules.dwa import DWASpec

DWA_KEYS = ("nu", "lam_max", "age_cap_steps", "server_kind")


def make_dwa_runner(cfg: dict, world, strategy: str) -> Runner:
    alg = dict(cfg["algorithm"])
    skip = GOSSIP_KEYS + MERGE_KEYS + DWA_KEYS + TOKEN_KEYS
    aspec, eng, aenv = async_parts(cfg, alg, world, alg.get("server_kind", "fedasync"), skip=skip)
    gspec, genv = gossip_parts(cfg, alg, world)
    if gspec.partitions > 1:
        raise ConfigError("algorithm=dwa does not support partitioned subsampling (partitions=1)")
    dspec = DWASpec(**{k: alg[k] for k in ("nu", "lam_max", "age_cap_steps") if k in alg})
    chunk = make_dwa_chunk(
        world.apply, world.train, aspec, eng, gspec, dspec, aenv, genv, world.model_bytes, strategy
    )
    n = int(world.env.counts.shape[0])
    init = init_dwa(
        init_async(world.params, aspec, eng, n), init_gossip_state(cfg, world, gspec, genv)
    )
    q = eng.quantum_s

    def drain(d):
        fl, a = drain_counters(d.fl)
        g, c = drain_counters(d.g)
        for k, v in c.items():
            a[k] = a.get(k, 0.0) + v
        return d.replace(fl=fl, g=g), a

    def gauges(d):
        return server_gauges(d.fl.server) | {
            "server_age": float(d.server_age),
            **node_gauges(d.g, world.n_real),
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


ALGORITHM = Algorithm("dwa", "hybrid", make_dwa_runner)
