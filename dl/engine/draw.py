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
