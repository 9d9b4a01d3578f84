"""Drawing the nodes a server dispatches to: the top of a random score, found without sorting N.

FedBuff's / FedScale's asynchronous server fills its free slots with online idle nodes drawn
uniformly at random (`async_aggregator.py`); the engine draws a score u_i ~ U[0, 1) per node (-1
for nodes that cannot be drawn) and takes the highest. `lax.top_k(score, C)` over N = 10,000
costs ~0.13 ms on CPU (most of a system-only quantum), although only its first `m` entries
(the free slots: a few per quantum) are used. `top_of` finds those `m` one at a time with a max
and a min-index reduction (~3 us each over 10,000 on CPU): the same entries, in the same order.
"""

import jax
import jax.numpy as jnp
import numpy as np

ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))  # Threefry-2x32 (Salmon et al., SC 2011)


def _rotl(v, r: int):
    return (v << np.uint32(r)) | (v >> np.uint32(32 - r))


def threefry_2x32(k1, k2, x1, x2):
    """The Threefry-2x32 hash (20 rounds) written out, as JAX's accelerator lowering is: JAX's
    CPU lowering rolls it into a 5-trip loop that XLA runs as separate kernels (~5.6 ns per
    uniform here, half of a system-only quantum at N = 10,000); unrolled, XLA fuses it."""
    ks = (k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r) ^ x0
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def uniform(key, n: int) -> jnp.ndarray:
    """`jax.random.uniform(key, (n,))`, bit for bit, with the unrolled hash (pinned by
    tests/test_draw.py against JAX's own; used only under the partitionable Threefry bits that
    JAX uses by default, else JAX's function)."""
    if not jax.config.jax_threefry_partitionable or str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.random.uniform(key, (n,))
    k = jax.random.key_data(key)
    hi = jnp.zeros((n,), jnp.uint32)  # the element index as a 64-bit counter (hi, lo)
    b1, b2 = threefry_2x32(k[0], k[1], hi, jnp.arange(n, dtype=jnp.uint32))
    bits = (b1 ^ b2) >> np.uint32(32 - 23) | np.uint32(0x3F800000)  # mantissa of [1, 2)
    return jnp.maximum(jnp.float32(0.0), jax.lax.bitcast_convert_type(bits, jnp.float32) - 1.0)


def top_of(score: jnp.ndarray, k: int, m: jnp.ndarray):
    """(top [k], idx [k] i32) of `score` [N]: entries j < min(m, k) equal those of
    `lax.top_k(score, k)` (descending; ties: lower index first, as top_k); the others are
    (-inf, 0). Cost: min(m, k) passes of two reductions over N."""
    n = score.shape[0]
    iota = jnp.arange(n, dtype=jnp.int32)

    def pick(j, carry):
        s, top, idx = carry
        best = jnp.max(s)
        i = jnp.min(jnp.where(s == best, iota, n))  # lowest index among the maxima
        return s.at[i].set(-jnp.inf), top.at[j].set(best), idx.at[j].set(i)

    init = (score, jnp.full((k,), -jnp.inf, score.dtype), jnp.zeros((k,), jnp.int32))
    _, top, idx = jax.lax.fori_loop(0, jnp.minimum(m, min(k, n)), pick, init)
    return top, idx
