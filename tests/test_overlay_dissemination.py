"""Task dissemination: calibration against the classical results, and invariants.

Calibration (ALGORITHMS.md §6.1, complete graph, N = 1000, all online): push needs
(1 + o(1))(log2 N + ln N) = 16.87 rounds (Frieze & Grimmett; our earlier simulation: 17.9),
pull 13.8, push-pull 9.1 (Karp et al. 2000); push rumor mongering with feedback and counter
k = 1, 2, 3 leaves residue 0.176, 0.037, 0.011 at traffic 1.74, 3.30, 4.53 (Demers et al. 1987).
"""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.errors import ConfigError
from dl.network.partners import uniform_partners
from dl.overlay import dissemination as dis

N = 1000
RUNS = 100
ROUNDS = 48
KEYS = jax.random.split(jax.random.key(0), RUNS)
ALL_ONLINE = jnp.ones((N,), bool)


@partial(jax.jit, static_argnames=("mode",))
def _runs(keys, online, k, consecutive, *, mode):
    """RUNS spreads of one task from node 0 over ROUNDS rounds: (final state, knows history)."""

    def one(key):
        state = dis.publish(dis.init_knowledge(N, 1), jnp.array([0]), 0.0)

        def body(s, r):
            now = (r + 1).astype(jnp.float32)
            key_r = jax.random.fold_in(key, r)
            s = dis.gossip_round(s, key_r, online, now, k, mode=mode, consecutive=consecutive)
            return s, s.knows[:, 0]

        return jax.lax.scan(body, state, jnp.arange(ROUNDS))

    return jax.vmap(one)(keys)


@pytest.fixture(scope="module")
def anti_entropy():
    out = {}
    for mode in ("push", "pull", "push_pull"):
        state, _ = _runs(KEYS, ALL_ONLINE, 0, True, mode=mode)
        out[mode] = np.asarray(state.informed_at.max(axis=(1, 2)))
    return out


def test_dissemination__everyone_informed(anti_entropy):
    for mode, rounds in anti_entropy.items():
        assert np.isfinite(rounds).all(), mode


def test_dissemination__push_matches_frieze_grimmett(anti_entropy):
    push = anti_entropy["push"].mean()
    formula = np.log2(N) + np.log(N)  # 16.87
    assert abs(push - formula) < 1.5, push
    assert abs(push - 17.9) < 0.5, push  # our reference simulation (ALGORITHMS.md §6.1)


def test_dissemination__pull_and_push_pull(anti_entropy):
    push, pull, pp = (anti_entropy[m].mean() for m in ("push", "pull", "push_pull"))
    assert abs(pull - 13.8) < 0.6, pull
    assert abs(pp - 9.1) < 0.4, pp
    assert pp + 3 < pull < push - 2


def test_dissemination__rumor_mongering_matches_demers():
    for k, s_ref, m_ref in [(1, 0.176, 1.74), (2, 0.037, 3.30), (3, 0.011, 4.53)]:
        state, _ = _runs(KEYS, ALL_ONLINE, k, True, mode="rumor")
        assert int(state.hot.sum()) == 0  # every rumor died out
        res = np.asarray(state.knows.mean(axis=(1, 2), dtype=jnp.float32))
        res = 1.0 - res
        m = np.asarray(state.carried.sum(axis=1)) / N  # one task: records = messages
        se = res.std() / np.sqrt(RUNS)
        assert abs(res.mean() - s_ref) < 4 * se + 0.001, (k, res.mean())
        assert abs(m.mean() - m_ref) < 0.06, (k, m.mean())
        assert abs(np.log(res.mean()) + m.mean()) < 0.15  # s = exp(-m)


def test_dissemination__cumulative_counter_stops_earlier():
    state, _ = _runs(KEYS, ALL_ONLINE, 2, False, mode="rumor")
    assert 1.0 - float(state.knows.mean()) > 0.042  # ~0.048 vs 0.037 with the consecutive counter


def test_dissemination__offline_nodes_learn_nothing_and_knowledge_is_monotone():
    online = np.random.default_rng(3).random(N) < 0.6
    online[0] = True
    off = ~online
    for mode in dis.MODES:
        state, history = _runs(KEYS, online, 3, True, mode=mode)
        history = np.asarray(history)  # [RUNS, ROUNDS, N]
        assert not (history[:, :-1] & ~history[:, 1:]).any(), mode  # monotone
        assert not history[:, :, off].any(), mode
        assert int(np.asarray(state.sent)[:, off].sum()) == 0, mode
        finite = np.isfinite(np.asarray(state.informed_at))
        assert (finite == np.asarray(state.knows)).all(), mode
        if mode != "rumor":
            assert history[:, -1, ~off].all(), mode


def test_dissemination__explicit_partner_ring():
    n = 50
    ring = (jnp.arange(n) + 1) % n
    online = jnp.ones((n,), bool).at[30].set(False)
    state = dis.publish(dis.init_knowledge(n, 1), jnp.array([0]), 0.0)
    for r in range(40):
        state = dis.gossip_round(
            state, jax.random.key(0), online, float(r + 1), mode="push", partner=ring
        )
    knows = np.asarray(state.knows[:, 0])
    assert knows[:30].all() and not knows[30:].any()  # node 30 is offline: the ring is cut
    np.testing.assert_array_equal(np.asarray(state.informed_at[:30, 0]), np.arange(30))


def test_dissemination__message_counts():
    n = 50
    ring = (jnp.arange(n) + 1) % n
    online = jnp.ones((n,), bool).at[10].set(False)
    state = dis.publish(dis.init_knowledge(n, 1), jnp.array([0]), 0.0)
    state = dis.gossip_round(state, jax.random.key(0), online, 1.0, mode="push_pull", partner=ring)
    sent = np.asarray(state.sent)
    assert sent[10] == 0 and sent[11] == 1  # 11 answers nobody: its asker 10 is offline
    assert (np.delete(sent, [10, 11]) == 2).all()  # one request and one reply (9's is lost)
    assert int(state.carried[0]) == int(state.carried.sum()) == 2  # 0 -> 1 push, 0 -> 49 reply
    state = dis.gossip_round(state, jax.random.key(0), online, 2.0, mode="push", partner=ring)
    assert int(state.sent.sum() - sent.sum()) == 3  # only nodes 49, 0, 1 know something


def test_dissemination__mode_tuple_is_sequential_modes():
    n = 50  # the shapes of the ring tests: push_pull with partners is compiled already
    rng = np.random.default_rng(5)
    online = rng.random(n) < 0.8
    partner = jnp.asarray(rng.integers(0, n, n), jnp.int32)
    state = dis.publish(dis.init_knowledge(n, 1), jnp.array([0]), 0.0)
    both = dis.gossip_round(
        state, jax.random.key(0), online, 1.0, mode=("rumor", "push_pull"), partner=partner
    )
    one = dis.gossip_round(state, jax.random.key(0), online, 1.0, mode="rumor", partner=partner)
    one = dis.gossip_round(one, jax.random.key(0), online, 1.0, mode="push_pull", partner=partner)
    chex.assert_trees_all_equal(both, one)


def test_dissemination__deterministic_and_no_retrace():
    n, t = 200, 5
    traced = jax.jit(
        chex.assert_max_traces(dis.gossip_round.__wrapped__, n=1), static_argnames=("mode",)
    )
    rng = np.random.default_rng(0)
    onlines = rng.random((6, n)) < 0.6
    outs = []
    for _ in range(2):
        state = dis.publish(dis.init_knowledge(n, t), jnp.arange(t, dtype=jnp.int32), 0.0)
        for r in range(6):
            key = jax.random.fold_in(jax.random.key(7), r)
            online = onlines[r]
            state = traced(state, key, online, float(r + 1), r % 3 + 1, mode="rumor")
        outs.append(state)
    chex.assert_trees_all_equal(outs[0], outs[1])


def test_dissemination__unknown_mode():
    with pytest.raises(ConfigError, match="gossip mode"):
        dis.gossip_round(
            dis.init_knowledge(4, 1), jax.random.key(0), jnp.ones(4, bool), 1.0, mode="flood"
        )


def test_partners__uniform_online_not_self():
    n = 500
    online = np.random.default_rng(1).random(n) < 0.3
    p = np.asarray(jax.jit(uniform_partners)(jax.random.key(5), online))
    on = np.asarray(online)
    assert (p[~on] == -1).all()
    assert on[p[on]].all() and (p[on] != np.nonzero(on)[0]).all()
    alone = jnp.zeros((n,), bool).at[3].set(True)
    assert (np.asarray(jax.jit(uniform_partners)(jax.random.key(0), alone)) == -1).all()


REF_FIELDS = ("knows", "hot", "counter", "informed_at", "sent", "carried")


def _reference_round(s, partner, online, now, k, consecutive, modes):
    """A plain numpy round on `[N, T]` booleans (the pre-bit-packing implementation)."""
    knows, hot, counter = s["knows"].copy(), s["hot"].copy(), s["counter"].copy()
    sent, carried = s["sent"].copy(), s["carried"].copy()
    n = knows.shape[0]
    for mode in modes:
        live = online & (partner >= 0)
        ok = live & online[np.maximum(partner, 0)]
        to = np.where(ok, partner, n)
        theirs = knows[np.maximum(partner, 0)]
        okc = ok[:, None]

        def or_into(base, payload, to=to):
            out = np.concatenate([base, np.zeros_like(base[:1])])
            np.logical_or.at(out, to, payload)
            return out[:n]

        if mode == "push":
            send = live & knows.any(1)
            new, sent_m, carried_m = or_into(knows, knows), send, (knows & send[:, None]).sum(1)
        elif mode in ("pull", "push_pull"):
            pulled = theirs & okc
            new = knows | pulled
            carried_m = np.bincount(to, (pulled & ~knows).sum(1), n + 1)[:n].astype(np.int64)
            if mode == "push_pull":
                mine = knows & okc
                new = or_into(new, mine)
                carried_m += (mine & ~pulled).sum(1)
            sent_m = live + np.bincount(to, minlength=n + 1)[:n]
        else:
            records = hot.sum(1)
            send = live & (records > 0)
            payload = hot & okc
            new = or_into(knows, payload)
            counter = counter + (payload & theirs).astype(np.int8)
            counter = np.where(payload & ~theirs & consecutive, np.int8(0), counter)
            hot = (hot & (counter < k)) | (new & ~knows)
            sent_m, carried_m = send, np.where(send, records, 0)
        sent, carried = sent + sent_m, carried + carried_m
        knows = new
    informed_at = np.where(knows & ~s["knows"], np.float32(now), s["informed_at"])
    return dict(
        knows=knows, hot=hot, counter=counter, informed_at=informed_at, sent=sent, carried=carried
    )


def _random_state(rng, n, t):
    knows = rng.random((n, t)) < rng.random()
    hot = knows & (rng.random((n, t)) < 0.3 * rng.random())
    return dis.Knowledge(
        knows=jnp.asarray(knows),
        hot=jnp.asarray(hot),
        counter=jnp.asarray(np.where(knows, rng.integers(0, 4, (n, t)), 0), jnp.int8),
        informed_at=jnp.asarray(np.where(knows, rng.random((n, t)), np.inf), jnp.float32),
        sent=jnp.asarray(rng.integers(0, 9, n), jnp.int32),
        carried=jnp.asarray(rng.integers(0, 99, n), jnp.int32),
    )


@pytest.mark.parametrize(
    ("n", "t", "modes"),
    [
        (300, 37, ("push",)),
        (300, 64, ("pull",)),
        (5000, 100, ("push_pull",)),  # > 2 chunks of `_update_rows`
        (5000, 100, ("rumor",)),
        (700, 5, ("rumor", "push_pull")),
    ],
)
def test_dissemination__packed_rounds_match_plain_reference(n, t, modes):
    rng = np.random.default_rng(n + t)
    for trial in range(3):
        state = _random_state(rng, n, t)
        online = rng.random(n) < (0.5, 0.9, 1.0)[trial]
        # few distinct targets: many senders per receiver (the OR of the push side)
        partner = np.where(rng.random(n) < 0.1, -1, rng.integers(0, max(n // 20, 2), n))
        k, consecutive = int(rng.integers(1, 4)), bool(trial % 2 == 0)
        mode = modes if len(modes) > 1 else modes[0]
        args = (jax.random.key(0), online, 7.0, k)
        kw = dict(mode=mode, partner=jnp.asarray(partner, jnp.int32), consecutive=consecutive)
        plain = dis.gossip_round(state, *args, **kw)
        packed = dis.gossip_round(dis.pack(state), *args, **kw)
        assert isinstance(plain, dis.Knowledge) and isinstance(packed, dis.PackedKnowledge)
        chex.assert_trees_all_equal(plain, dis.unpack(packed))
        ref = _reference_round(
            {f: np.asarray(getattr(state, f)) for f in REF_FIELDS},
            partner,
            online,
            7.0,
            k,
            consecutive,
            modes,
        )
        for f in REF_FIELDS:
            np.testing.assert_array_equal(np.asarray(getattr(plain, f)), ref[f], err_msg=f)


def test_dissemination__pack_roundtrip_publish_and_uniform_partners():
    rng = np.random.default_rng(11)
    n, t = 3000, 45
    state = _random_state(rng, n, t)
    packed = dis.pack(state)
    assert packed.knows.shape == (n, 2) and packed.knows.dtype == jnp.uint32
    chex.assert_trees_all_equal(dis.unpack(packed), state)
    origin = jnp.asarray(np.where(rng.random(t) < 0.5, rng.integers(0, 40, t), -1), jnp.int32)
    chex.assert_trees_all_equal(
        dis.unpack(dis.publish(packed, origin, 3.0)), dis.publish(state, origin, 3.0)
    )
    online = rng.random(n) < 0.4
    for mode in (("rumor", "push_pull"), "push", "pull"):
        a = dis.gossip_round(state, jax.random.key(3), online, 5.0, 2, mode=mode)
        b = dis.gossip_round(packed, jax.random.key(3), online, 5.0, 2, mode=mode)
        chex.assert_trees_all_equal(a, dis.unpack(b))
    np.testing.assert_array_equal(dis.coverage(packed), dis.coverage(state))
    np.testing.assert_array_equal(dis.all_informed_at(packed), dis.all_informed_at(state))
