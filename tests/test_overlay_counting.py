"""SWAR row/column counts of boolean arrays agree with plain sums (all shapes, fallbacks)."""

import jax
import numpy as np
import pytest

from dl.overlay.counting import count_cols, count_rows


@pytest.mark.parametrize("shape", [(1000, 100), (777, 8), (600, 7), (3, 4), (300, 1020)])
def test_counting__matches_plain_sums(shape):
    x = np.random.default_rng(0).random(shape) < 0.7
    x[0] = True  # a full row
    rows, cols = jax.jit(lambda a: (count_rows(a), count_cols(a)))(x)
    np.testing.assert_array_equal(np.asarray(rows), x.sum(axis=1))
    np.testing.assert_array_equal(np.asarray(cols), x.sum(axis=0))
