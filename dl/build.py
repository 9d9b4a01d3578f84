"""Turns a resolved config (plain dict) into the pieces a simulation runs on: data, model,
device profiles, availability, node environment. Every bad value stops with a one-line error."""

from dataclasses import dataclass, replace
from typing import Any

import jax
import jax.numpy as jnp

from dl.data.dataset import Dataset
from dl.data.datasets import load_dataset
from dl.data.partition import NodeData, partition
from dl.data.root import resolve_data_root
from dl.devices.energy_env import ENERGY_FIELDS, EnergyEnv, make_energy_env
from dl.devices.profiles import DeviceProfiles, constant_profiles, flash_profiles
from dl.engine.rounds import NodeEnv
from dl.errors import ConfigError
from dl.models import init_params, make_model, model_bytes
from dl.sharding import make_mesh, padded_nodes, shard_nodes, silence_padding
from dl.traces.availability import Availability, is_online, online_during
from dl.traces.fedscale import build_fedscale
from dl.traces.stunner import build_stunner
from dl.traces.synthetic import always_on, bernoulli, diurnal
from dl.train.local import LocalTrainSpec


@dataclass
class Built:
    dataset: Dataset
    nodes: NodeData
    model: Any
    apply: Any  # (params, x [B, ...]) -> logits
    params: Any
    model_bytes: int
    profiles: DeviceProfiles
    env: NodeEnv
    train: LocalTrainSpec
    availability: Availability
    root: Any
    energy: EnergyEnv
    mesh: Any = None
    n_real: int = 0  # nodes before padding to a multiple of the device count


def _spec(cls, d: dict, where: str):
    try:
        return cls(**d)
    except TypeError as e:
        raise ConfigError(f"bad keys in {where}: {e}") from None


def build_profiles(cfg: dict, n: int, root) -> DeviceProfiles:
    p = dict(cfg["trace"]["profiles"])
    kind = p.pop("kind")
    if kind == "constant":
        return constant_profiles(n, **p)
    if kind == "flash":
        return flash_profiles(root, n, seed=cfg["seed"], **p)
    raise ConfigError(f"unknown trace.profiles.kind '{kind}' (choose from: constant, flash)")


def horizon_s(cfg: dict) -> float:
    """Virtual seconds of availability and server timelines: the run plus a day, since
    sessions (and server states) started during the run may end after it."""
    return float(cfg["sim"]["duration_s"]) + 86400.0


AVAILABILITY = ("always", "stunner", "bernoulli", "diurnal", "fedscale")


def build_availability(cfg: dict, n: int, root) -> Availability:
    """Node availability over the whole run (config `trace.availability` + its options)."""
    tr = cfg["trace"]
    kind = tr.get("availability", "always")
    horizon = horizon_s(cfg)
    seed = int(cfg["seed"])
    opts = dict(tr.get("availability_options") or {})
    try:
        if kind == "always":
            return always_on(n)
        if kind == "stunner":
            return build_stunner(root, n=n, horizon_s=horizon, seed=seed, **opts)
        if kind == "bernoulli":
            return bernoulli(n, horizon, seed=seed, **opts)
        if kind == "diurnal":
            return diurnal(n, horizon, seed, **opts)
        if kind == "fedscale":
            return build_fedscale(n=n, horizon_s=horizon, seed=seed, **opts)
    except TypeError as e:
        raise ConfigError(f"bad trace.availability_options for '{kind}': {e}") from None
    options = ", ".join(AVAILABILITY)
    raise ConfigError(f"unknown trace.availability '{kind}' (choose from: {options})")


def build(cfg: dict, availability: Availability | None = None) -> Built:
    """`availability`: use this timeline (N = sim.num_nodes rows) instead of the trace's."""
    task = cfg["task"]
    n_real = int(cfg["sim"]["num_nodes"])
    if n_real < 1:
        raise ConfigError(f"sim.num_nodes must be >= 1, got {n_real}")
    mesh = make_mesh(cfg["sim"].get("shard", "auto"))
    n = padded_nodes(n_real, mesh)
    root = resolve_data_root(cfg["data"]["root"])
    ds = load_dataset(task["dataset"], root, **(task.get("dataset_options") or {}))
    part = task["partition"]
    nodes = partition(
        ds,
        n_real,
        part["scheme"],
        seed=cfg["seed"],
        alpha=part.get("alpha", 0.5),
        shards_per_node=part.get("shards_per_node", 2),
        max_examples=part.get("max_examples"),
        pad_nodes_to=n,
    )
    model = make_model(
        task["model"],
        ds.input_shape,
        ds.num_classes,
        dataset_name=ds.name,
        **(task.get("model_options") or {}),
    )
    params = init_params(model, ds.input_shape, jax.random.key(cfg["seed"]), ds.x_train.dtype)
    mbytes = model_bytes(params)
    train = _spec(LocalTrainSpec, task["train"], "task.train")
    profiles = build_profiles(cfg, n, root)
    energy = make_energy_env(
        profiles, mbytes, train.batch_size, train.local_steps, cfg.get("energy") or {}
    )
    if availability is None:
        availability = build_availability(cfg, n, root)
    av, timeline = node_timeline(availability, n_real, mesh, n)
    energy = EnergyEnv(**{f: shard_nodes(getattr(energy, f), mesh, n) for f in ENERGY_FIELDS})
    env = NodeEnv(
        x=shard_nodes(jnp.asarray(nodes.x), mesh, n),
        y=shard_nodes(jnp.asarray(nodes.y), mesh, n),
        counts=shard_nodes(jnp.asarray(nodes.counts), mesh, n),
        t_client=energy.t_client,
        energy=energy,
        **timeline,
    )
    return Built(
        ds,
        nodes,
        model,
        lambda p, x: model.apply({"params": p}, x),
        params,
        mbytes,
        profiles,
        env,
        train,
        av,
        root,
        energy,
        mesh,
        n_real,
    )


def pad_availability(av: Availability, n: int) -> Availability:
    """Appends never-online rows up to n nodes (for a timeline built for the real nodes only)."""
    m = int(av.first_online.shape[0])
    if m == n:
        return av
    if m > n:
        raise ConfigError(f"availability has {m} nodes, the simulation {n}")
    times = jnp.concatenate([av.times, jnp.full((n - m, av.times.shape[1]), jnp.inf)], axis=0)
    first = jnp.concatenate([av.first_online, jnp.zeros((n - m,), bool)])
    return Availability(times=times.astype(jnp.float32), first_online=first)


def node_timeline(av: Availability, n_real: int, mesh, n: int) -> tuple[Availability, dict]:
    """`av` padded to n nodes (padding never online) and sharded, with the `NodeEnv` fields it
    sets: `avail` (queried inside the jitted program, an argument, not a constant) and the
    `online` / `online_until` queries for callers outside it."""
    av = shard_nodes(silence_padding(pad_availability(av, n), n_real), mesh, n)
    return av, {
        "online": lambda t: is_online(av, t),
        "online_until": lambda t0, t1: online_during(av, t0, t1),
        "avail": av,
    }


def with_availability(b: Built, av: Availability) -> Built:
    """`b` running on another availability timeline (same nodes, data, devices)."""
    av, timeline = node_timeline(av, b.n_real, b.mesh, int(b.env.counts.shape[0]))
    return replace(b, availability=av, env=replace(b.env, **timeline))
