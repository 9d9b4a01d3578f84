"""Peer-sampling topologies pinned on small cases: k-regular overlays (exact degrees, no
self-loops, no duplicate edges, seeded), what `kregular` may return, and Cyclon's view invariants
under churn (ALGORITHMS.md §6.2; Voulgaris et al. 2005)."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.network import cyclon as cy
from dl.network.partners import delivered
from dl.network.peers import _perm_neighbours, make_peer_sampler


@partial(jax.jit, static_argnums=(1, 2))
def _nb(key, n, k):
    return _perm_neighbours(key, n, k)


def _check_k_regular(nb: np.ndarray, n: int, k: int):
    assert nb.shape == (n, k)
    assert ((nb >= 0) & (nb < n)).all(), "ids out of range"
    assert (nb != np.arange(n)[:, None]).all(), "a node is its own neighbour"
    s = np.sort(nb, axis=1)
    assert (s[:, 1:] != s[:, :-1]).all(), "duplicate out-neighbours"
    # in-degree: every node appears in exactly k rows (the module doc claims k in-neighbours)
    np.testing.assert_array_equal(np.bincount(nb.reshape(-1), minlength=n), np.full(n, k))


def _strongly_connected(nb: np.ndarray) -> bool:
    """Host BFS from node 0 along the out-edges, then along the in-edges."""
    n = nb.shape[0]
    src, dst = np.repeat(np.arange(n), nb.shape[1]), nb.reshape(-1)
    for a, b in ((src, dst), (dst, src)):
        seen = np.zeros(n, bool)
        seen[0] = True
        while True:
            new = np.zeros(n, bool)
            new[b[seen[a]]] = True
            if not (new & ~seen).any():
                break
            seen |= new
        if not seen.all():
            return False
    return True


@pytest.mark.parametrize(
    ("n", "k"), [(2, 1), (3, 2), (5, 2), (7, 3), (8, 7), (12, 1), (12, 2), (40, 4)]
)
def test_kregular_overlay_is_exactly_k_regular_and_connected_on_many_seeds(n, k):
    # union of k random permutations with self-loops shifted by one (the old construction)
    # repeats a neighbour whenever two permutations agree on a row: P ~ 1 - exp(-n k^2 / 2n);
    # a circulant whose offsets all share a factor with n (e.g. 12 with offsets 2 and 4) is
    # disconnected
    for seed in range(40):
        nb = np.asarray(_nb(jax.random.key(seed), n, k))
        _check_k_regular(nb, n, k)
        assert _strongly_connected(nb), (n, k, seed)


def test_kregular_small_cases_by_hand():
    # n = 2, k = 1: the only 1-regular digraph without self-loops is 0 -> 1, 1 -> 0
    np.testing.assert_array_equal(np.asarray(_nb(jax.random.key(3), 2, 1)), [[1], [0]])
    # n = 4, k = 3: every node links to all 3 others
    full = np.sort(np.asarray(_nb(jax.random.key(4), 4, 3)), axis=1)
    np.testing.assert_array_equal(full, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


N, K = 12, 3
KEYS = jax.random.split(jax.random.key(99), 400)


def _picks(sampler, online, quantum=0):
    """[400, N] peers drawn with 400 keys."""
    return np.asarray(jax.vmap(lambda kk: sampler(kk, online, quantum))(KEYS))


def _neighbour_sets(picks):
    return [frozenset(picks[:, i].tolist()) for i in range(picks.shape[1])]


def test_kregular_sampler_picks_only_its_neighbours_and_the_seed_decides_the_graph():
    online = jnp.ones((N,), bool)
    graphs = {}
    for seed in (0, 1, 0):
        picks = _picks(make_peer_sampler("kregular", N, K, seed=seed), online)
        truth = np.asarray(_perm_neighbours(jax.random.key(seed), N, K))
        sets = _neighbour_sets(picks)
        # each pick is one of the node's k neighbours, and 400 draws hit all k of them
        # (a neighbour missed in 400 uniform draws of 3: (2/3)^400 ~ 1e-70)
        assert sets == [frozenset(r.tolist()) for r in truth]
        if seed in graphs:
            assert graphs[seed] == sets, "same seed, different graph"
        graphs[seed] = sets
    assert graphs[0] != graphs[1], "the seed is ignored"


def test_kregular_offline_neighbour_is_returned_and_the_message_lost():
    sampler = make_peer_sampler("kregular", N, K, seed=5)
    truth = np.asarray(_perm_neighbours(jax.random.key(5), N, K))
    online = np.ones(N, bool)
    online[truth[0, 0]] = False  # one of node 0's neighbours goes offline
    picks = _picks(sampler, jnp.asarray(online))
    # the sampler still draws among all k neighbours (a fixed overlay, not an online filter) ...
    assert set(picks[:, 0].tolist()) == set(truth[0].tolist())
    # ... and a message to the offline one is lost
    lost = picks[:, 0] == truth[0, 0]
    ok = np.asarray(jax.vmap(lambda p: delivered(p, jnp.asarray(online)))(jnp.asarray(picks)))
    assert lost.any() and not ok[lost, 0].any() and ok[~lost, 0].all()


def test_kregular_dynamic_redraws_a_k_regular_overlay_per_call():
    sampler = make_peer_sampler("kregular_dynamic", N, K, seed=0)
    picks = _picks(sampler, jnp.ones((N,), bool))
    assert (picks != np.arange(N)).all() and ((picks >= 0) & (picks < N)).all()
    # a fixed overlay would give each node exactly K distinct peers; redrawn, far more
    assert np.mean([len(s) for s in _neighbour_sets(picks)]) > 2 * K


def _check_views(view, age, n, c):
    assert view.shape == (n, c)
    assert ((view >= -1) & (view < n)).all(), "invalid id"
    assert (view != np.arange(n)[:, None]).all(), "a node holds itself"
    s = np.sort(view, axis=1)
    assert not ((s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)).any(), "duplicate entries"
    assert (age >= 0).all() and (age[view < 0] == 0).all()


def test_cyclon_views_stay_valid_under_churn():
    # small views and long messages relative to them, so collisions (self, known ids) are frequent
    n, c, ell = 16, 5, 3
    state = cy.init_cyclon(jax.random.key(0), n, c)
    rng = np.random.default_rng(0)
    for r in range(150):
        online = jnp.asarray(rng.random(n) < 0.6)  # a fresh online set every round
        state = cy.cyclon_shuffle(state, jax.random.key(r), online, shuffle_len=ell, reseed=True)
        view, age = np.asarray(state.view), np.asarray(state.age)
        _check_views(view, age, n, c)
        peer = np.asarray(cy.cyclon_sample(state, jax.random.key(1000 + r), online))
        on = np.asarray(online)
        assert (peer[~on] == -1).all()
        for i in np.flatnonzero(on):  # a peer is a member of the sender's view (or -1 if empty)
            assert peer[i] in set(view[i][view[i] >= 0].tolist()) | (
                {-1} if (view[i] < 0).all() else set()
            )
