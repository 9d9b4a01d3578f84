"""Deterministic 32-bit hashing in `jnp`: MurmurHash3_x86_32 of two 32-bit words.

Verifiable reviewer selection (ALGORITHMS.md §6.3, Plexus-style hash-based sampling) needs a
hash that every node can recompute and that cannot be steered by the task's engineer. We use
Austin Appleby's MurmurHash3 (x86, 32-bit) on the 8-byte little-endian message
`(node_id, task_id)` with the salt as seed, written with `uint32` arithmetic (wrapping
multiplications), so `H(node, task)` equals the reference C implementation bit for bit and
vectorizes over any broadcast shape.
"""

import jax
import jax.numpy as jnp
from jax import Array

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_N = 0xE6546B64
_F1 = 0x85EBCA6B
_F2 = 0xC2B2AE35


def _u32(x: Array | int) -> Array:
    return jnp.asarray(x).astype(jnp.uint32)


def _rotl(x: Array, r: int) -> Array:
    return (x << jnp.uint32(r)) | (x >> jnp.uint32(32 - r))


def fmix32(h: Array) -> Array:
    """MurmurHash3's finalizer: an invertible avalanche mix of a `uint32` array."""
    h = _u32(h)
    h = h ^ (h >> jnp.uint32(16))
    h = h * jnp.uint32(_F1)
    h = h ^ (h >> jnp.uint32(13))
    h = h * jnp.uint32(_F2)
    return h ^ (h >> jnp.uint32(16))


def _mix_block(h: Array, k: Array) -> Array:
    k = _rotl(k * jnp.uint32(_C1), 15) * jnp.uint32(_C2)
    h = _rotl(h ^ k, 13)
    return h * jnp.uint32(5) + jnp.uint32(_N)


def hash2(a: Array | int, b: Array | int, seed: Array | int = 0) -> Array:
    """MurmurHash3_x86_32 of the 8 bytes `(uint32 a, uint32 b)` little-endian, with `seed`.

    Broadcasts `a`, `b` and `seed`; returns `uint32`. Negative ids wrap modulo 2**32.
    """
    h = _mix_block(_u32(seed), _u32(a))
    h = _mix_block(h, _u32(b))
    return fmix32(h ^ jnp.uint32(8))


def order_key(h: Array) -> Array:
    """Maps `uint32` hashes to `int32` with the same order (for `lax.top_k`, sorts)."""
    return jax.lax.bitcast_convert_type(h ^ jnp.uint32(0x80000000), jnp.int32)
