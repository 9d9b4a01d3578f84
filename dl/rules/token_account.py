"""Token-account flow control for gossip learning (Danner & Jelasity, "Token account algorithms:
the best of the proactive and reactive worlds", ICDCS 2018; used by Hegedűs et al., JPDC 2021).

A node holds a balance of `a` tokens. Every gossip period it sends one model with probability
PROACTIVE(a), otherwise it banks a token; on receiving a (useful) model it sends REACTIVE(a)
models at once and spends that many tokens. The average rate stays one model per period, but
fresh models travel on in bursts ("hot potato"). Exact functions as in gossipy's
`flow_control.py` (randomized variant, JPDC's choice; defaults C = 20, A = 10, 1 <= A <= C):
  PROACTIVE(a) = 0 if a < A - 1; (a - A + 1) / (C - A + 1) if A - 1 <= a <= C; 1 if a > C
  REACTIVE(a)  = randRound(a / A)
`purely proactive` (PROACTIVE = 1, REACTIVE = 0) is plain gossip learning.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dl.errors import ConfigError

FLOWS = ("proactive", "randomized")


@dataclass(frozen=True)
class TokenSpec:
    flow: str = "proactive"  # [proactive (plain GL), randomized (token account)]
    capacity: float = 20.0  # C
    reactivity: float = 10.0  # A
    max_reactive: int = 2  # extra messages a node may send per quantum (ceil(C / A))

    def validate(self) -> None:
        if self.flow not in FLOWS:
            raise ConfigError(f"unknown algorithm.flow '{self.flow}' ({', '.join(FLOWS)})")
        if not 1.0 <= self.reactivity <= self.capacity:
            raise ConfigError("token account needs 1 <= algorithm.reactivity <= capacity")
        if self.max_reactive < 0:
            raise ConfigError("algorithm.max_reactive must be >= 0")


def proactive_prob(a: jnp.ndarray, spec: TokenSpec) -> jnp.ndarray:
    """PROACTIVE(a) of the randomized token account (1 for plain gossip)."""
    if spec.flow == "proactive":
        return jnp.ones_like(a)
    c, big_a = spec.capacity, spec.reactivity
    mid = (a - big_a + 1.0) / (c - big_a + 1.0)
    return jnp.where(a < big_a - 1.0, 0.0, jnp.where(a > c, 1.0, mid))


def reactive_count(key, a: jnp.ndarray, spec: TokenSpec) -> jnp.ndarray:
    """REACTIVE(a) = randRound(a / A) (0 for plain gossip), capped at max_reactive."""
    if spec.flow == "proactive":
        return jnp.zeros(a.shape, jnp.int32)
    x = jnp.maximum(a, 0.0) / spec.reactivity
    lo = jnp.floor(x)
    up = jax.random.uniform(key, a.shape) < (x - lo)
    return jnp.minimum(lo + up, spec.max_reactive).astype(jnp.int32)
