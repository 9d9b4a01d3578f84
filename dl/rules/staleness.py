"""Staleness functions s(k) for asynchronous aggregation.

Xie, Koyejo, Gupta, "Asynchronous Federated Optimization" (FedAsync, OPT 2020):
constant s = 1, polynomial s = (k + 1)^-a, hinge s = 1 if k <= b else 1 / (a (k - b) + 1).
Nguyen et al., "Federated Learning with Buffered Asynchronous Aggregation" (FedBuff,
AISTATS 2022): s = 1 / sqrt(1 + k), i.e. polynomial with a = 0.5. k >= 0 is the version gap.
"""

import jax.numpy as jnp

from dl.errors import ConfigError

KINDS = ("constant", "poly", "hinge")


def check_staleness(kind: str, a: float, b: float) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown staleness function '{kind}' (choose from: {', '.join(KINDS)})")
    if a < 0 or b < 0:
        raise ConfigError(f"staleness parameters must be >= 0, got a={a}, b={b}")


def staleness_weight(kind: str, k: jnp.ndarray, a: float = 0.5, b: float = 4.0) -> jnp.ndarray:
    """s(k) for integer staleness k >= 0 (any shape); `kind` is static."""
    k = jnp.maximum(k, 0).astype(jnp.float32)
    if kind == "constant":
        return jnp.ones_like(k)
    if kind == "poly":
        return (k + 1.0) ** (-a)
    if kind == "hinge":
        return jnp.where(k <= b, 1.0, 1.0 / (a * (k - b) + 1.0))
    raise ConfigError(f"unknown staleness function '{kind}' (choose from: {', '.join(KINDS)})")
