"""The algorithm interface: every algorithm is one module of `dl.algorithms` named after it,
exposing `ALGORITHM = Algorithm(name, engine, make)`; `make(cfg, built, strategy)` binds its
rule (`dl.rules`) to the engine it runs on (`dl.engine`) and returns a `Runner`, the only face
the host loop (`dl.loop`) knows. Like fedjax's `FederatedAlgorithm(init, apply)`, over named
state pytrees; adding an algorithm is one module, one YAML in conf/algorithm, one golden test.
"""

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import jax.numpy as jnp
import numpy as np

from dl.errors import ConfigError

ENGINES = ("rounds", "async", "gossip", "hybrid")


@dataclass
class Runner:
    """One algorithm ready to run: its initial state and the functions of it the loop calls."""

    init: Any  # the initial state pytree
    chunk: Callable  # (state, key, t_stop: float) -> state advanced to virtual time >= t_stop
    clock: Callable  # state -> float virtual seconds
    params: Callable  # state -> server model pytree, or None (serverless)
    drain: Callable  # state -> (state with counters zeroed, {counter: float since last drain})
    gauges: Callable  # state -> {name: scalar} logged every evaluation ("round" required)
    node_params: Callable | None = None  # state -> node models pytree [N, ...] (gossip, DWA)


@dataclass(frozen=True)
class Algorithm:
    name: str  # the `algorithm.name` of its YAML
    engine: str  # one of ENGINES: the clock it runs on
    make: Callable  # (cfg: dict, built: dl.build.Built, strategy: str) -> Runner


@cache
def algorithm_names() -> tuple[str, ...]:
    """Every module of this package that defines `ALGORITHM`, in name order."""
    pkg = importlib.import_module("dl.algorithms")
    out = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base" and hasattr(_module(info.name), "ALGORITHM"):
            out.append(info.name)
    return tuple(sorted(out))


def _module(name: str):
    return importlib.import_module(f"dl.algorithms.{name}")


def get_algorithm(name) -> Algorithm:
    """The registered algorithm `name`; an unknown name is one ConfigError listing the known."""
    if not isinstance(name, str) or name not in algorithm_names():
        options = ", ".join(algorithm_names())
        raise ConfigError(f"unknown algorithm '{name}' (choose from: {options})")
    alg = _module(name).ALGORITHM
    if alg.name != name or alg.engine not in ENGINES:
        raise ConfigError(f"dl.algorithms.{name}: ALGORITHM must be named '{name}' with an engine")
    return alg


def make_runner(cfg: dict, built, strategy: str) -> Runner:
    """The runner of `cfg["algorithm"]["name"]` on the built world `built`."""
    return get_algorithm(cfg["algorithm"].get("name")).make(cfg, built, strategy)


def pick(d: dict, cls, where: str, skip=()) -> dict:
    """The keys of `d` that are fields of the dataclass `cls` (minus `skip`); any key that is
    neither a field nor skipped is a ConfigError naming it and `where`."""
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


def drain_counters(st):
    """(state with its `counters` zeroed, {counter: float}) for the async and gossip states."""
    out = {k: float(v) for k, v in st.counters.items()}
    return st.replace(counters={k: jnp.zeros_like(v) for k, v in st.counters.items()}), out
