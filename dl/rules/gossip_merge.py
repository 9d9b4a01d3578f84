"""Age-weighted model merging for gossip learning.

Hegedűs, Danner, Jelasity, "Gossip Learning as a Decentralized Alternative to Federated
Learning" (DAIS 2019) and "Decentralized learning works: an empirical comparison of gossip
learning and federated learning" (JPDC 2021): the receiver of (w_r, a_r) merges with weight
a_r / (a_l + a_r) and keeps age max(a_l, a_r) (option: the weighted age). No-merge ("random
walk") replaces the local model. Limited merging (Danner, Hegedűs, Jelasity, ICCCI 2023; gossipy
`LimitedMergeMixin`): keep the local model if a_l > a_r + L, take the received one if
a_r > a_l + L, merge otherwise; it also bounds the damage of a forged age.
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dl.errors import ConfigError

MERGES = ("age", "none", "limited")


@dataclass(frozen=True)
class MergeSpec:
    rule: str = "age"  # [age, none (random walk), limited]
    limit: float = 1.0  # L for limited merging, in SGD steps
    age_rule: str = "max"  # [max, weighted]

    def validate(self) -> None:
        if self.rule not in MERGES:
            raise ConfigError(f"unknown algorithm.merge '{self.rule}' ({', '.join(MERGES)})")
        if self.age_rule not in ("max", "weighted"):
            raise ConfigError(f"unknown algorithm.age_rule '{self.age_rule}' (max, weighted)")


def merge_weight(a_l: jnp.ndarray, a_r: jnp.ndarray, spec: MergeSpec) -> jnp.ndarray:
    """Weight of the received model (any shape; equal ages give 1/2, two age-0 models 1/2)."""
    total = a_l + a_r
    w = jnp.where(total > 0, a_r / jnp.where(total > 0, total, 1.0), 0.5)
    if spec.rule == "none":
        return jnp.ones_like(w)
    if spec.rule == "limited":
        w = jnp.where(a_l > a_r + spec.limit, 0.0, jnp.where(a_r > a_l + spec.limit, 1.0, w))
    return w


def merged_age(a_l, a_r, w, spec: MergeSpec):
    if spec.rule == "none":
        return a_r
    if spec.age_rule == "weighted":
        return (1.0 - w) * a_l + w * a_r
    return jnp.maximum(a_l, a_r)


def mix(x, y, w, mask=None):
    """Per-node mix `x + w (y - x)` over pytrees with a leading node axis; w: [K]. Written so
    that mixing a model with an identical one returns it bit for bit.

    `mask` (same tree, bool) restricts the mix to the coordinates a message carried (model
    subsampling); other coordinates keep x."""

    def one(a, b, m=None):
        # computed in float32 and stored back in a's dtype (bfloat16 node storage)
        af, bf = a.astype(jnp.float32), b.astype(jnp.float32)
        ww = w.reshape((-1,) + (1,) * (a.ndim - 1)).astype(jnp.float32)
        out = (af + ww * (bf - af)).astype(a.dtype)
        return out if m is None else jnp.where(m, out, a)

    if mask is None:
        return jax.tree.map(one, x, y)
    return jax.tree.map(one, x, y, mask)
