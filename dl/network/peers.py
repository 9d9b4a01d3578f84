"""Peer sampling for gossip learning, all over the node axis and jitted.

`uniform`: a uniform random online peer (an ideal peer-sampling service, Jelasity et al.,
TOCS 2007; the default of Hegedűs et al.). `kregular`: a fixed random k-regular overlay (a random
circulant: offset 1 plus k - 1 random offsets); a node picks one neighbour uniformly, online or
not (the caller checks both ends, `dl.network.partners.delivered`). `kregular_dynamic`: the same
overlay redrawn every quantum.
Notes: docs/NOTES.md#dlnetworkpeerspy
"""

import jax
import jax.numpy as jnp

from dl import rng
from dl.errors import ConfigError
from dl.network.partners import uniform_below, uniform_partners

TOPOLOGIES = ("uniform", "kregular", "kregular_dynamic")


def _perm_neighbours(key, n: int, k: int) -> jnp.ndarray:
    """[N, k] i32 out-neighbours of a random circulant (module doc): k distinct ids != self per
    row, every id in exactly k rows."""
    k_ring, k_off = jax.random.split(key)
    ring = jax.random.permutation(k_ring, n)  # [N] node at each ring position
    pos = jnp.zeros((n,), jnp.int32).at[ring].set(jnp.arange(n, dtype=jnp.int32))  # [N] inverse
    # [k] distinct offsets in 1..n-1; offset 1 always (a Hamiltonian cycle in random order), so
    # the overlay is strongly connected even when the others share a factor with n
    rest = 2 + jax.random.permutation(k_off, max(n - 2, 1))[: k - 1]
    offsets = jnp.concatenate([jnp.ones((1,), rest.dtype), rest])
    return ring[(pos[:, None] + offsets[None, :]) % n].astype(jnp.int32)


def make_peer_sampler(topology: str, n: int, degree: int, seed: int = 0):
    """Returns `sample(key, online [N] bool, quantum) -> peer [N] i32` (-1: nobody to send to)."""
    if topology == "uniform":
        return lambda key, online, quantum: uniform_partners(key, online)
    if topology == "cyclon":
        raise ConfigError("topology=cyclon keeps state: the gossip engine handles it itself")
    if topology not in TOPOLOGIES:
        raise ConfigError(f"unknown algorithm.topology '{topology}' ({', '.join(TOPOLOGIES)})")
    if not 1 <= degree < n:
        raise ConfigError(f"algorithm.degree must be in [1, {n - 1}], got {degree}")
    fixed = _perm_neighbours(jax.random.key(seed), n, degree)

    def sample(key, online, quantum):
        nb = fixed
        if topology == "kregular_dynamic":
            nb = _perm_neighbours(jax.random.fold_in(key, rng.DYNAMIC_OVERLAY), n, degree)
        pick = uniform_below(key, (n,), degree)
        return jnp.take_along_axis(nb, pick[:, None], axis=1)[:, 0]

    return sample
