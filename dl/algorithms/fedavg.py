"""Synchronous FedAvg (McMahan et al., AISTATS 2017) on the synchronous-rounds engine
(`dl.engine.rounds`, FedScale's round semantics). This module holds the rule: the server's
pseudo-gradient from the K clients' models, to which an optax optimizer is applied
(FedAvg/FedAvgM/FedAdam).

Upload compression and the server rules (weighted, dais, jpdc): `dl.rules.fedavg`.
"""

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from dl.algorithms.base import Algorithm, Runner, pick
from dl.engine.rounds import ENERGY_KEYS, NodeEnv, RoundsState, make_rounds_chunk
from dl.errors import ConfigError
from dl.rules.fedavg import SERVER_RULES, make_pseudo_gradient
from dl.rules.server_opt import ServerOptSpec, make_server_optimizer
from dl.train.local import LocalTrainSpec


@dataclass(frozen=True)
class FedAvgSpec:
    clients_per_round: int = 10  # K
    overcommit: float = 1.3  # sample ceil(overcommit * K) online clients
    idle_wait_s: float = 60.0  # clock step when no client can be scheduled
    upload_frac: float = 1.0  # upload compression: random fraction of delta coordinates sent
    server_rule: str = "weighted"  # [weighted, dais, jpdc] (module doc)
    server_opt: ServerOptSpec = ServerOptSpec()


def init_fedavg(params, spec: FedAvgSpec) -> RoundsState:
    tx = make_server_optimizer(spec.server_opt)
    z = jnp.zeros((), jnp.float32)
    energy = {k: z for k in ENERGY_KEYS}
    i = jnp.zeros((), jnp.int32)
    return RoundsState(params, tx.init(params), z, i, z, z, z, i, energy)


def make_fedavg_chunk(
    apply_fn, train: LocalTrainSpec, spec: FedAvgSpec, env: NodeEnv, model_bytes: int, strategy: str
):
    """Jitted `chunk(state, key, t_stop, max_rounds) -> state` of FedAvg on the rounds engine."""
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
    return make_rounds_chunk(
        apply_fn,
        train,
        spec,
        env,
        model_bytes,
        strategy,
        make_pseudo_gradient(spec),
        make_server_optimizer(spec.server_opt),
    )


def server_opt_spec(alg: dict) -> ServerOptSpec:
    """The server optimizer of an `algorithm` config (`server_opt:`; FedAvg/FedAvgM/FedAdam)."""
    try:
        return ServerOptSpec(**(alg.get("server_opt") or {}))
    except TypeError as e:
        raise ConfigError(f"bad keys in algorithm.server_opt: {e}") from None


def make_fedavg_runner(cfg: dict, world, strategy: str) -> Runner:
    """FedAvg on the synchronous-rounds engine (server always up)."""
    alg = dict(cfg["algorithm"])
    if cfg["server"].get("kind", "always") != "always":
        raise ConfigError("algorithm=fedavg supports only server=always (use fedasync/fedbuff)")
    if not cfg["sim"].get("train", True):
        raise ConfigError("sim.train=false (system-only mode) needs algorithm=fedasync/fedbuff")
    spec = FedAvgSpec(
        **pick(alg, FedAvgSpec, "algorithm (fedavg)", skip=("name", "server_opt")),
        server_opt=server_opt_spec(alg),
    )
    chunk = make_fedavg_chunk(
        world.apply, world.train, spec, world.env, world.model_bytes, strategy
    )
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
        init_fedavg(world.params, spec),
        run,
        lambda st: float(st.clock),
        lambda st: st.params,
        drain,
        gauges,
    )


ALGORITHM = Algorithm("fedavg", "rounds", make_fedavg_runner)
