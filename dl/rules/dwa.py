"""DWA's rule, doubly weighted averaging (ALGORITHMS.md §3.2; our proposal, no published formula).

An upload carrying gossip progress mixes into the server with `lam = min(lam_max, alpha * s(k)
* r**nu)`: age-gap staleness `k = ceil(max(0, a_s - a_y) / H)` and age boost
`r = max(1, (a_y - H) / a_s)`, claimed ages capped at `a_s + age_cap_steps`. A node that
downloads adopts the server model and age (lambda_down = 1).
"""

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from dl.arrays import put_rows
from dl.rules.staleness import staleness_weight


@dataclass(frozen=True)
class DWASpec:
    nu: float = 1.0  # age-boost exponent (0 switches the age factor off)
    lam_max: float = 1.0  # cap on the server's mixing weight for one upload
    age_cap_steps: float = 1e9  # claimed age at most a_s + this (forged-age guard)


def upload_weight(a_s, a_y, h, aspec, dspec: DWASpec):
    """Server mixing weight of one upload carrying gossip progress (ALGORITHMS.md §3.2):
    `lam = min(lam_max, alpha * s(k) * r**nu)` with the claimed age capped at
    `a_s + age_cap_steps`, age-gap staleness `k = ceil(max(0, a_s - a_y) / H)` (not the version
    gap) and age boost `r = max(1, (a_y - H) / a_s)` (a_s floored at 1).
    a_s, a_y: [] f32 server and upload ages, h: [] f32 local steps H.
    Returns (lam [] f32, capped a_y [] f32)."""
    a_y = jnp.minimum(a_y, a_s + dspec.age_cap_steps)
    k = jnp.ceil(jnp.maximum(0.0, a_s - a_y) / h).astype(jnp.int32)
    s = staleness_weight(aspec.staleness, k, aspec.stale_a, aspec.stale_b)
    r = jnp.maximum(1.0, (a_y - h) / jnp.maximum(a_s, 1.0))
    return jnp.minimum(dspec.lam_max, aspec.alpha * s * r**dspec.nu), a_y


def unsynced_upload(carry, arrival, h, aspec, dspec: DWASpec, train=True):
    """One unsynced upload applied to the server: `x <- (1 - lam) x + lam y`, version + 1,
    `a_s <- max(a_s, a_y)` (capped a_y). carry = (x pytree, version [] i32, a_s [] f32),
    arrival = (y pytree, a_y [] f32, go [] bool: a real upload). Returns the new carry."""
    x, version, a_s = carry
    y, a_y, go = arrival
    lam, a_y = upload_weight(a_s, a_y, h, aspec, dspec)
    lam = jnp.where(go, lam, 0.0)
    if train:
        x = jax.tree.map(lambda a, b: (1.0 - lam) * a + lam * b, x, y)
    return (x, version + go.astype(jnp.int32), jnp.where(go, jnp.maximum(a_s, a_y), a_s))


def adopt_server(params, age, dirty, took, server_params, server_age, train=True):
    """Nodes `took` [C'] (index N = none) adopt the server model (lambda_down = 1, §3.2): their
    model becomes the server's, their age the server age, and they are clean again.
    params: pytree [N, ...], age [N] f32, dirty [N] bool. Returns (params, age, dirty)."""
    age = age.at[took].set(server_age, mode="drop")
    dirty = dirty.at[took].set(False, mode="drop")
    if train:
        params = jax.tree.map(
            lambda p, s: put_rows(p, took, jnp.broadcast_to(s, (took.shape[0],) + s.shape)),
            params,
            server_params,
        )
    return params, age, dirty
