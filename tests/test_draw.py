"""The system-only quantum's two shortcuts (issue 17) give exactly what they replace:
`top_of` the first m entries of `lax.top_k` (ties: lower index first), `advance` the
transition counts of the binary search (`is_online`)."""

import jax
import jax.numpy as jnp
import numpy as np

from dl.engine.draw import top_of
from dl.traces.availability import _count_le, advance, from_transitions, is_online, online_at


def test_top_of_equals_top_k_on_its_first_m_entries_with_ties():
    # scores rounded to 2 decimals over 500 nodes: many ties; half the nodes not drawable (-1)
    for seed in range(10):
        r = np.random.default_rng(seed)
        s = np.round(r.random(500), 2).astype(np.float32)
        s[r.random(500) < 0.5] = -1.0
        top, idx = jax.lax.top_k(jnp.asarray(s), 50)
        for m in (0, 1, 7, 50, 80):
            t2, i2 = top_of(jnp.asarray(s), 50, jnp.int32(m))
            j = min(m, 50)
            np.testing.assert_array_equal(t2[:j], top[:j])
            np.testing.assert_array_equal(i2[:j], idx[:j])


def test_top_of_hand_case():
    # scores [0.5, 0.9, -1, 0.9, 0.2]: descending 0.9 (node 1), 0.9 (node 3), 0.5 (node 0)
    s = jnp.array([0.5, 0.9, -1.0, 0.9, 0.2], jnp.float32)
    top, idx = top_of(s, 4, jnp.int32(3))
    np.testing.assert_array_equal(idx[:3], [1, 3, 0])
    np.testing.assert_array_equal(top[:3], np.float32([0.9, 0.9, 0.5]))
    assert np.isneginf(np.asarray(top[3]))  # beyond m: unspecified, -inf here


def test_advance_counts_transitions_like_the_binary_search():
    # node 0 flips at 1.0, 1.5, 1.7 (three in one step of 1 s), node 1 at 2.0, node 2 never
    av = from_transitions(
        np.array([0, 0, 0, 1]), np.float32([1.0, 1.5, 1.7, 2.0]), np.array([True, False, True]), 3
    )
    seen, nxt = jnp.full((3,), -1, jnp.int32), jnp.full((3,), -jnp.inf)
    for t in (0.0, 0.5, 1.0, 2.0, 2.5, 3.0):
        seen, nxt = advance(av, seen, nxt, t)
        np.testing.assert_array_equal(seen, _count_le(av, t))
        np.testing.assert_array_equal(online_at(av, seen), is_online(av, t))
    np.testing.assert_array_equal(seen, [3, 1, 0])  # by hand: 3 flips, 1 flip, none
    np.testing.assert_array_equal(nxt, [np.inf] * 3)  # no transition left after t = 3


def test_unrolled_uniform_is_jax_uniform_bit_for_bit():
    from dl.engine.draw import uniform

    for seed in range(4):
        key = jax.random.fold_in(jax.random.key(seed), 11)
        for n in (1, 7, 1000, 4099):
            want = np.asarray(jax.random.uniform(key, (n,))).view(np.uint32)
            got = np.asarray(jax.jit(uniform, static_argnums=1)(key, n)).view(np.uint32)
            np.testing.assert_array_equal(got, want)
    # and the unrolled hash is what runs (not JAX's function behind a fallback)
    text = str(jax.make_jaxpr(lambda k: uniform(k, 8))(jax.random.key(0)))
    assert "threefry2x32" not in text and "random_bits" not in text
