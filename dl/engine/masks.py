"""Which coordinates a gossip message carries (Hegedűs et al., JPDC 2021 §4: model subsampling
and partitioned subsampling). Both are pure functions of what the message records (its u32
`seed` or its partition), so a mask drawn at send time is drawn again identically at arrival
and no mask is stored on the wire."""

import jax
import jax.numpy as jnp
import numpy as np

from dl import rng

MASK_KEY = 0x5EED  # coordinate masks: key(MASK_KEY) folded with the message's seed and leaf


def coordinate_masks(seed, like, frac: float):
    """[M, ...] bool per-message coordinate masks (model subsampling): each coordinate of leaf
    i is carried with probability `frac`, drawn from key(MASK_KEY) folded with seed [M], i."""
    base = jax.random.key(MASK_KEY)
    leaves, tdef = jax.tree.flatten(like)

    def leaf(i, x):
        draw = (
            lambda s: jax.random.bernoulli(  # noqa: E731
                jax.random.fold_in(jax.random.fold_in(base, s), i), frac, x.shape[1:]
            )
        )
        return jax.vmap(draw)(seed)

    return jax.tree.unflatten(tdef, [leaf(i, x) for i, x in enumerate(leaves)])


def partition_masks(part, like, n_part: int):
    """[M, ...] bool masks of partition part [M] i32 of every message. Coordinates are split
    once into `n_part` fixed partitions (a seeded permutation of each tensor, mod n_part)."""

    def one(i, x):
        size = int(np.prod(x.shape[1:], dtype=np.int64))
        perm = np.random.default_rng([rng.PARTITION_LAYOUT, i]).permutation(size) % n_part
        pid = jnp.asarray(perm.reshape(x.shape[1:]).astype(np.int32))
        return pid[None] == part.reshape((-1,) + (1,) * pid.ndim)

    leaves, tdef = jax.tree.flatten(like)
    return jax.tree.unflatten(tdef, [one(i, x) for i, x in enumerate(leaves)])


def message_masks(part, seed, like, n_part: int, frac: float):
    """Coordinates carried by messages with these partitions / seeds (None: all of them)."""
    if n_part > 1:
        return partition_masks(part, like, n_part)
    if frac < 1.0:
        return coordinate_masks(seed, like, frac)
    return None
