"""Random inputs for timing one `make_batch_train` call over K nodes (benchmarks only)."""

import jax
import jax.numpy as jnp
import numpy as np

from dl.models import init_params


def random_batch_args(model, shape: tuple, k: int, m: int, classes: int = 10, seed: int = 0):
    """The arguments of a batch-train call: K copies of the initial model, [K, m, *shape]
    standard-normal examples, [K, m] labels in [0, classes), full counts [K], all nodes
    active [K], and K keys."""
    p0 = init_params(model, shape, jax.random.key(seed))
    rng = np.random.default_rng(seed)
    return (
        jax.tree.map(lambda a: jnp.broadcast_to(a, (k, *a.shape)), p0),
        jnp.asarray(rng.standard_normal((k, m, *shape), np.float32)),
        jnp.asarray(rng.integers(0, classes, (k, m)), jnp.int32),
        jnp.full((k,), m, jnp.int32),
        jnp.ones((k,), bool),
        jax.random.split(jax.random.key(seed + 1), k),
    )
