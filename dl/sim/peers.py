"""Peer sampling for gossip learning, all over the node axis and jitted.

`uniform`: a uniform random online peer (an ideal peer-sampling service, Jelasity et al.,
TOCS 2007; the default of Hegedűs et al.). `kregular`: a fixed random overlay in which every
node has k out-neighbours and k in-neighbours (the union of k random permutations, as gossipy's
random k-regular topology); a node picks one neighbour uniformly and the message is lost if it
is offline. `kregular_dynamic`: the same overlay redrawn every quantum (peer sampling with
fresh views).
"""

import jax
import jax.numpy as jnp

from dl.errors import ConfigError
from dl.overlay.partners import uniform_below, uniform_partners

TOPOLOGIES = ("uniform", "kregular", "kregular_dynamic")


def _perm_neighbours(key, n: int, k: int) -> jnp.ndarray:
    """[N, k] out-neighbours from k random permutations (self-loops shifted by one)."""
    perms = jax.vmap(lambda kk: jax.random.permutation(kk, n))(jax.random.split(key, k)).T
    ids = jnp.arange(n)[:, None]
    return jnp.where(perms == ids, (perms + 1) % n, perms).astype(jnp.int32)


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
            nb = _perm_neighbours(jax.random.fold_in(key, 7), n, degree)
        pick = uniform_below(key, (n,), degree)
        return jnp.take_along_axis(nb, pick[:, None], axis=1)[:, 0]

    return sample
