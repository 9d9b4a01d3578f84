"""Row reads and writes of [N, ...] arrays without an upcast copy (issue 17).

XLA's CPU backend has no bfloat16 scatter: it converts the whole operand to float32, scatters
and converts back, i.e. two full [N, ...] float32 temporaries per write (measured: 3.4 GB of
temporaries in a gossip chunk of 2,000 bfloat16 `cnn_small` nodes, and 10,000 nodes ran out of
24 GiB); it also rewrites `convert(gather(p))` as `gather(convert(p))` and hoists the float32
copy of all of `p` out of a loop. A 16-bit float array is therefore read and written through
its bits (`uint16`): the same bytes land in the same rows. (XLA still materializes some of the
bitcasts: 1.7 GB of temporaries remain at 2,000 nodes, 2 bfloat16 copies of the node models.)
"""

import jax
import jax.numpy as jnp


def _half(p) -> bool:
    return p.dtype.itemsize == 2 and jnp.issubdtype(p.dtype, jnp.floating)


def put_rows(p: jnp.ndarray, idx: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """`p.at[idx].set(v.astype(p.dtype), mode="drop")` without a float32 copy of `p`."""
    v = v.astype(p.dtype)
    if _half(p):
        bits = jax.lax.bitcast_convert_type
        out = bits(p, jnp.uint16).at[idx].set(bits(v, jnp.uint16), mode="drop")
        return bits(out, p.dtype)
    return p.at[idx].set(v, mode="drop")


def get_rows(p: jnp.ndarray, idx: jnp.ndarray) -> jnp.ndarray:
    """`p[idx]`, read through the bits for 16-bit floats, so XLA cannot hoist a float32 copy of
    all of `p` out of a loop (it did, for the merges' and the trainings' reads)."""
    if _half(p):
        bits = jax.lax.bitcast_convert_type
        return bits(bits(p, jnp.uint16)[idx], p.dtype)
    return p[idx]
