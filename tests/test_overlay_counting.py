"""SWAR row/column counts of boolean arrays agree with plain sums (all shapes, fallbacks)."""

import jax
import numpy as np
import pytest

from dl.overlay.counting import (
    count_cols,
    count_rows,
    pack_bits,
    popcount_cols,
    popcount_rows,
    unpack_bits,
)


@pytest.mark.parametrize("shape", [(1000, 100), (777, 8), (600, 7), (3, 4), (300, 1020)])
def test_counting__matches_plain_sums(shape):
    x = np.random.default_rng(0).random(shape) < 0.7
    x[0] = True  # a full row
    rows, cols = jax.jit(lambda a: (count_rows(a), count_cols(a)))(x)
    np.testing.assert_array_equal(np.asarray(rows), x.sum(axis=1))
    np.testing.assert_array_equal(np.asarray(cols), x.sum(axis=0))


@pytest.mark.parametrize("shape", [(1000, 100), (77, 32), (50, 1), (300, 65)])
def test_counting__bit_packing_roundtrip_and_popcounts(shape):
    x = np.random.default_rng(1).random(shape) < 0.4
    x[0] = True
    n, t = shape
    words = np.asarray(jax.jit(pack_bits)(x))
    assert words.shape == (n, -(-t // 32)) and words.dtype == np.uint32
    # bit t % 32 of word t // 32
    want = np.zeros_like(words)
    for j in range(t):
        want[:, j // 32] |= x[:, j].astype(np.uint32) << np.uint32(j % 32)
    np.testing.assert_array_equal(words, want)
    np.testing.assert_array_equal(np.asarray(jax.jit(unpack_bits, static_argnums=1)(words, t)), x)
    np.testing.assert_array_equal(np.asarray(jax.jit(popcount_rows)(words)), x.sum(axis=1))
    cols = jax.jit(popcount_cols, static_argnums=1)(words, t)
    np.testing.assert_array_equal(np.asarray(cols), x.sum(axis=0))
