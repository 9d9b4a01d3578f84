"""Node-model storage: bfloat16 node models are held as their bits (`uint16`) (issue 17).

XLA's CPU backend has no bfloat16 scatter: it converts the whole operand to float32, scatters
and converts back, i.e. two full [N, ...] float32 temporaries per write (measured: 3.4 GB of
temporaries in a gossip chunk of 2,000 bfloat16 `cnn_small` nodes, and 10,000 nodes ran out of
24 GiB); it also rewrites `convert(gather(p))` as `gather(convert(p))` and hoists the float32
copy of all of `p` out of a loop. Reading and writing bfloat16 rows through a `bitcast` to
`uint16` avoids those, but XLA's CPU backend does not alias a whole-array bitcast: each one is a
copy (1.7 GB of temporaries at 2,000 nodes, two bfloat16 copies of the node models). So the
engines *store* bfloat16 node models as `uint16` (`store`), and only rows are ever converted:
`get_rows` returns bfloat16 rows, `put_rows` writes any float rows, `floats` gives the float32
view of a whole (small, or block of an) array inside a jitted reduction. float32 storage is
unchanged: every function here is the identity / plain indexing for it.
"""

import jax
import jax.numpy as jnp

BITS = jnp.uint16  # storage of bfloat16 node models
VIEW = jnp.bfloat16  # what BITS hold


def _bits(p) -> bool:
    return p.dtype == BITS


def store(x: jnp.ndarray, dtype) -> jnp.ndarray:
    """`x` stored as node-model dtype `dtype` (float32: as is; bfloat16: its bits, uint16)."""
    if jnp.dtype(dtype) == jnp.dtype(VIEW):
        return jax.lax.bitcast_convert_type(x.astype(VIEW), BITS)
    return x.astype(dtype)


def view(p: jnp.ndarray) -> jnp.ndarray:
    """The float values of a stored array (bfloat16 for bits; copies in XLA: rows or blocks)."""
    return jax.lax.bitcast_convert_type(p, VIEW) if _bits(p) else p


def floats(p: jnp.ndarray) -> jnp.ndarray:
    """float32 values of a stored array (one fused convert, for reductions and evaluation)."""
    return view(p).astype(jnp.float32)


def put_rows(p: jnp.ndarray, idx: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """`p.at[idx].set(v, mode="drop")` with float rows `v` stored in `p`'s storage."""
    if _bits(p):
        return p.at[idx].set(store(v, VIEW), mode="drop")
    return p.at[idx].set(v.astype(p.dtype), mode="drop")


def get_rows(p: jnp.ndarray, idx: jnp.ndarray) -> jnp.ndarray:
    """The float values of rows `p[idx]` (bfloat16 rows of bits storage)."""
    return view(p[idx])


def store_tree(tree, dtype):
    return jax.tree.map(lambda x: store(x, dtype), tree)


def floats_tree(tree):
    return jax.tree.map(floats, tree)
