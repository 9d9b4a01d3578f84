"""FedAsync (Xie et al., "Asynchronous Federated Optimization", 2020) on the async event clock.

Rule: `dl.rules.fedasync` (mix each upload with `alpha * s(k)`), applied in arrival order by
`dl.engine.async_server`; clock: `dl.engine.async_clock` (C training slots, per-quantum
arrivals, the server's availability). `async_parts` also serves FedBuff and DWA.
"""

import numpy as np

from dl.algorithms.base import Algorithm, Runner, drain_counters, pick, quantum_clock
from dl.build import horizon_s
from dl.devices.server import build_server
from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async, make_async_chunk
from dl.engine.async_server import AsyncServerSpec, staleness_mean

ENG_KEYS = ("quantum_s", "concurrency", "max_arrivals")


def async_parts(cfg: dict, alg: dict, world, kind: str, skip=()):
    """(server spec, engine spec, AsyncEnv) of an `algorithm` config whose server rule is
    `kind`; keys in `skip` belong to another part (DWA's gossip keys)."""
    sim, srv = cfg["sim"], dict(cfg["server"])
    where = f"algorithm ({alg['name']})"
    opts = pick(alg, AsyncServerSpec, where, skip=("name",) + ENG_KEYS + tuple(skip))
    spec = AsyncServerSpec(**(opts | {"kind": kind}))
    eng = EngineSpec(
        **{k: alg[k] for k in ENG_KEYS if k in alg},
        upload_policy=srv.get("upload_policy", "lost"),
        train=bool(sim.get("train", True)),
    )
    e = world.energy
    env = AsyncEnv(
        x=world.env.x,
        y=world.env.y,
        counts=world.env.counts,
        t_down=e.t_down,
        t_comp=e.t_comp,
        t_up=e.t_up,
        power_w=e.power_w,
        e_down_j=e.e_down_j,
        e_up_j=e.e_up_j,
        nodes=world.availability,
        server=build_server(srv, horizon_s(cfg), int(cfg["seed"])),
    )
    return spec, eng, env


def server_gauges(s) -> dict:
    """Gauges of an async server state: version, accepted and stale-dropped uploads."""
    return {
        "round": int(s.version),
        "updates_applied": int(s.applied),
        "updates_stale": int(s.stale_dropped),
    }


def make_async_runner(cfg: dict, world, strategy: str, kind: str) -> Runner:
    """The async-FL runner with server rule `kind` (fedasync or fedbuff)."""
    spec, eng, env = async_parts(cfg, dict(cfg["algorithm"]), world, kind)
    chunk = make_async_chunk(world.apply, world.train, spec, eng, env, world.model_bytes, strategy)
    q = eng.quantum_s

    def gauges(st):
        s = st.server
        return server_gauges(s) | {
            "nodes_training": int((st.slots.node >= 0).sum()),
            "staleness_mean": float(staleness_mean(s)),  # exact; the histogram clips
            "staleness_hist": np.asarray(s.hist).tolist(),
        }

    n = int(world.env.counts.shape[0])
    return Runner(
        init_async(world.params, spec, eng, n),
        lambda st, key, t: chunk(st, key, t),
        lambda st: quantum_clock(st.quantum, q),
        lambda st: st.server.params,
        drain_counters,
        gauges,
    )


ALGORITHM = Algorithm(
    "fedasync", "async", lambda cfg, world, s: make_async_runner(cfg, world, s, "fedasync")
)
