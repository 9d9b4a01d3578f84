"""The node data is an argument of every engine's jitted chunk, never a constant of its program
(issue 17): a closed-over [N, M, ...] array is embedded in the compiled program, so compile time
and compile memory grow with the data (53 s for 2.3 GB). Each engine's chunk is lowered on a
small world and on the same world with 10x the examples per node; the dense constants in the
lowered program (`stablehlo.constant dense<...>` other than splats) must stay under a small
budget that does not grow with the data."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.algorithms.fedavg import FedAvgSpec, init_fedavg, make_fedavg_chunk
from dl.devices.energy_env import EnergyEnv
from dl.devices.server import build_server
from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async, make_async_chunk
from dl.engine.async_server import AsyncServerSpec
from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_chunk,
)
from dl.engine.hybrid import init_dwa, make_dwa_chunk
from dl.engine.rounds import NodeEnv
from dl.rules.dwa import DWASpec
from dl.traces.availability import from_transitions, is_online, online_during
from dl.train.local import LocalTrainSpec

N, D, C, T = 16, 8, 4, 6  # nodes, features, classes, availability transitions per node
M = 50  # examples per node at scale 1: x is N * M * D * 4 B = 25.6 KB, 256 KB at scale 10
BUDGET = 8192  # bytes of constants allowed in a chunk program (~600 scalars), whatever the data
TRAIN = LocalTrainSpec(batch_size=4, local_steps=2, lr=0.1)
PARAMS = {"w": jnp.full((D, C), 0.1, jnp.float32), "b": jnp.zeros((C,), jnp.float32)}
CONST = re.compile(r"stablehlo\.constant dense<([^>]*)> : tensor<([^>]*)>")
ITEM = {"i1": 1, "i8": 1, "ui8": 1, "i16": 2, "bf16": 2, "f16": 2, "i32": 4, "ui32": 4, "f32": 4}
ITEM |= {"i64": 8, "ui64": 8, "f64": 8}


def apply(p, x):
    return x @ p["w"] + p["b"]


def constant_bytes(text: str) -> int:
    """Bytes of the non-splat dense constants of a lowered program (a splat, one value
    broadcast to a shape, costs one element)."""
    total = 0
    for value, ty in CONST.findall(text):
        *dims, dtype = ty.split("x")
        size = int(np.prod([int(d) for d in dims], dtype=np.int64)) if dims else 1
        splat = not (value.startswith("[") or value.startswith('"0x'))
        total += ITEM.get(dtype, 4) * (1 if splat else size)
    return total


def world(scale: int):
    """Random data (M * scale examples per node) and a random on/off timeline."""
    rng = np.random.default_rng(scale)
    m = M * scale
    x = jnp.asarray(rng.normal(size=(N, m, D)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, C, size=(N, m)).astype(np.int32))
    counts = jnp.full((N,), m, jnp.int32)
    node = np.repeat(np.arange(N), T)
    times = np.sort(rng.uniform(0, 1000, size=(N, T)), axis=1).astype(np.float32).ravel()
    av = from_transitions(node, times, rng.random(N) < 0.5, N)
    f = lambda v: jnp.asarray(rng.uniform(0.5, 1.5, N) * v, jnp.float32)  # noqa: E731
    return x, y, counts, av, f


def rounds_program(scale: int) -> str:
    x, y, counts, av, f = world(scale)
    e = EnergyEnv(f(1.0), f(5.0), f(1.0), f(2.0), f(0.1), f(0.1), f(0.05))
    env = NodeEnv(
        x,
        y,
        counts,
        e.t_client,
        lambda t: is_online(av, t),
        lambda t0, t1: online_during(av, t0, t1),
        e,
        avail=av,
    )
    spec = FedAvgSpec(clients_per_round=4)
    chunk = make_fedavg_chunk(apply, TRAIN, spec, env, model_bytes=200, strategy="vmap")
    st = init_fedavg(PARAMS, spec)
    return chunk.lower(st, jax.random.key(0), jnp.float32(50.0), jnp.int32(5)).as_text()


def async_envs(scale: int):
    x, y, counts, av, f = world(scale)
    srv = build_server({"kind": "periodic", "period_s": 200.0, "down_fraction": 0.5}, 1e3, 0)
    aenv = AsyncEnv(x, y, counts, f(1.0), f(4.0), f(1.0), f(2.0), f(0.1), f(0.1), av, srv)
    genv = GossipEnv(x, y, counts, f(4.0), f(1e4), f(1e4), f(2.0), f(0.1), f(0.1), av)
    return aenv, genv


ASPEC = AsyncServerSpec(kind="fedasync")
ENG = EngineSpec(quantum_s=1.0, concurrency=4, max_arrivals=4)
GSPEC = GossipSpec(period_s=5.0, quantum_s=1.0, max_trainings=4)


def async_program(scale: int) -> str:
    aenv, _ = async_envs(scale)
    chunk = make_async_chunk(apply, TRAIN, ASPEC, ENG, aenv, 200, "vmap")
    st = init_async(PARAMS, ASPEC, ENG, N)
    return chunk.lower(st, jax.random.key(0), jnp.float32(10.0)).as_text()


def gossip_program(scale: int) -> str:
    _, genv = async_envs(scale)
    chunk = make_gossip_chunk(apply, TRAIN, GSPEC, genv, 200, "vmap")
    st = init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 200))
    return chunk.lower(st, jax.random.key(1), jnp.float32(10.0)).as_text()


def dwa_program(scale: int) -> str:
    aenv, genv = async_envs(scale)
    chunk = make_dwa_chunk(apply, TRAIN, ASPEC, ENG, GSPEC, DWASpec(), aenv, genv, 200, "vmap")
    g0 = init_gossip(PARAMS, N, GSPEC, jax.random.key(0), gossip_capacity(GSPEC, genv, 200))
    st = init_dwa(init_async(PARAMS, ASPEC, ENG, N), g0)
    return chunk.lower(st, jax.random.key(1), jnp.float32(10.0)).as_text()


PROGRAMS = {
    "rounds": rounds_program,
    "async": async_program,
    "gossip": gossip_program,
    "dwa": dwa_program,
}


def test_constant_bytes_reads_hex_constants():
    # a closed-over [100] f32 array is a 400-byte constant (printed as a list or in hex); an
    # argument is no constant; a splat (zeros) costs one element
    a = jnp.asarray(np.random.default_rng(0).normal(size=100).astype(np.float32))
    b = jnp.arange(100, dtype=jnp.float32)
    closed = jax.jit(lambda i: a[i]).lower(3).as_text()
    passed = jax.jit(lambda a, i: a[i]).lower(a, 3).as_text()
    assert 400 <= constant_bytes(closed) < 400 + 16  # + the index arithmetic's scalars
    assert constant_bytes(passed) < 16
    assert 400 <= constant_bytes(jax.jit(lambda i: b[i]).lower(3).as_text()) < 400 + 16
    assert constant_bytes(jax.jit(lambda: jnp.zeros((100,)) + 1).lower().as_text()) < 16


@pytest.mark.parametrize("engine", sorted(PROGRAMS))
def test_chunk_embeds_no_node_data(engine):
    small, big = PROGRAMS[engine](1), PROGRAMS[engine](10)
    # 10x the data: x alone grows from 25.6 KB to 256 KB; the program's constants must not
    assert constant_bytes(big) <= BUDGET, constant_bytes(big)
    assert constant_bytes(big) - constant_bytes(small) <= 64
