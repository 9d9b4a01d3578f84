"""Golden numbers, derived by hand, for every gossip update rule (ALGORITHMS.md §1.2-1.4):
age-weighted merge (age = max or weighted), limited merge, no-merge (random walk), subsampled
and partitioned merges, the randomized token account, and queue = last / all while training.

Engine tests use 2 nodes and 2-4 parameters on fast links (3,584 bits at 1e6 kbit/s take
3.5 us, so a message merges in the quantum it is sent in); quantum 1 s. Local "training" is one
SGD step (lr 0.5, weight decay 1) on a model whose output ignores its parameters: the loss
gradient is 0, so a session maps p -> p / 2 and adds 1 to the age.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.engine.gossip_clock import (
    GossipEnv,
    GossipSpec,
    gossip_capacity,
    init_gossip,
    make_gossip_quantum,
)
from dl.rules.gossip_merge import MergeSpec, merge_weight, merged_age, mix
from dl.rules.token_account import TokenSpec, proactive_prob, reactive_count
from dl.traces.availability import from_transitions
from dl.train.local import LocalTrainSpec

MBYTES = 448
TRAIN = LocalTrainSpec(batch_size=1, local_steps=1, lr=0.5, weight_decay=1.0)
F = jnp.float32


def apply(p, x):
    return jnp.zeros((x.shape[0], 2), jnp.float32)  # zero loss gradient: training halves p


def fast_env(n=2, av=None):
    f = lambda v: jnp.full((n,), v, jnp.float32)  # noqa: E731
    if av is None:  # always online
        av = from_transitions(np.zeros(0, np.int64), np.zeros(0, np.float32), np.ones(n, bool), n)
    return GossipEnv(
        jnp.zeros((n, 1, 1)), jnp.zeros((n, 1), jnp.int32), jnp.ones((n,), jnp.int32),
        f(0.5), f(1e6), f(1e6), f(1.0), f(0.1), f(0.1), av,
    )  # fmt: skip


def run(spec, w, age, next_gossip, quanta=1, part_age=None, av=None, **state):
    """`quanta` steps of the engine from a hand-made 2-node state (`av`: availability)."""
    genv = fast_env(len(age), av)
    st = init_gossip(
        {"w": jnp.zeros((len(w[0]),))}, len(age), spec, jax.random.key(0),
        gossip_capacity(spec, genv, MBYTES),
    )  # fmt: skip
    st = st.replace(
        params={"w": jnp.asarray(w, F)},
        age=jnp.asarray(age, F),
        part_age=jnp.asarray(age, F)[:, None] if part_age is None else jnp.asarray(part_age, F),
        next_gossip=jnp.asarray(next_gossip, F),
        **{k: jnp.asarray(v) for k, v in state.items()},
    )
    step = make_gossip_quantum(apply, TRAIN, spec, genv, MBYTES, "vmap")
    everyone = jnp.ones((len(age),), bool)
    one = jax.jit(lambda s: step(s, jax.random.key(1), everyone))
    for _ in range(quanta):
        st = one(st)
    return st


# --- §1.2 merge rules (pure functions) -----------------------------------------------------


def test_age_merge_two_nodes():
    # local [1, 2] age 1, received [5, 10] age 3: a = 3 / (1 + 3) = 3/4
    a_l, a_r = F(1.0), F(3.0)
    w = merge_weight(a_l, a_r, MergeSpec())
    assert float(w) == 0.75
    # [1, 2] + 3/4 ([5, 10] - [1, 2]) = [1 + 3, 2 + 6] = [4, 8]
    out = mix({"w": jnp.array([[1.0, 2.0]])}, {"w": jnp.array([[5.0, 10.0]])}, w[None])
    np.testing.assert_array_equal(out["w"], [[4.0, 8.0]])
    assert float(merged_age(a_l, a_r, w, MergeSpec())) == 3.0  # max(1, 3)
    # weighted age: (1 - 3/4) * 1 + 3/4 * 3 = 0.25 + 2.25 = 2.5
    assert float(merged_age(a_l, a_r, w, MergeSpec(age_rule="weighted"))) == 2.5
    # two fresh models (ages 0): the plain mean, w = 1/2
    assert float(merge_weight(F(0.0), F(0.0), MergeSpec())) == 0.5


@pytest.mark.parametrize(
    "a_l, a_r, limit, expect",
    [
        (5.0, 3.0, 1.0, 0.0),  # 5 > 3 + 1: keep the local model
        (3.0, 5.0, 1.0, 1.0),  # 5 > 3 + 1: take the received model
        (3.0, 4.0, 1.0, 4 / 7),  # |3 - 4| <= 1: merge, 4 / (3 + 4)
        (4.0, 3.0, 1.0, 3 / 7),  # 4 > 3 + 1 is false (equal): merge, 3 / 7
        (5.0, 3.0, 2.0, 3 / 8),  # L = 2: 5 > 5 is false: merge, 3 / 8
        (3.0, 6.0, 2.0, 1.0),  # L = 2: 6 > 5: take
    ],
)
def test_limited_merge_threshold(a_l, a_r, limit, expect):
    spec = MergeSpec(rule="limited", limit=limit)
    w = merge_weight(F(a_l), F(a_r), spec)
    np.testing.assert_allclose(float(w), expect, rtol=1e-6)
    # keep-local leaves the age a_l = max; take-received gives a_r = max
    assert float(merged_age(F(a_l), F(a_r), w, spec)) == max(a_l, a_r)


def test_no_merge_is_a_random_walk():
    # the received model replaces the local one, with the received age, even a younger one
    spec = MergeSpec(rule="none")
    w = merge_weight(F(5.0), F(2.0), spec)
    assert float(w) == 1.0
    out = mix({"w": jnp.array([[1.0, 2.0]])}, {"w": jnp.array([[7.0, 9.0]])}, w[None])
    np.testing.assert_array_equal(out["w"], [[7.0, 9.0]])
    assert float(merged_age(F(5.0), F(2.0), w, spec)) == 2.0


def test_subsampled_mix_moves_only_carried_coordinates():
    # w = 3/4 on coordinates 0 and 2 only: 1 + 3/4 (5 - 1) = 4, 3 + 3/4 (7 - 3) = 6
    x, y = {"w": jnp.array([[1.0, 2.0, 3.0, 4.0]])}, {"w": jnp.array([[5.0, 6.0, 7.0, 8.0]])}
    m = {"w": jnp.array([[True, False, True, False]])}
    np.testing.assert_array_equal(mix(x, y, jnp.array([0.75]), m)["w"], [[4.0, 2.0, 6.0, 4.0]])


# --- the same rules through the engine --------------------------------------------------


@pytest.mark.parametrize("age_rule, age1", [("max", 3.0), ("weighted", 2.5)])
def test_engine_merges_by_age(age_rule, age1):
    # node 0 ([1, 2], age 1) sends at 0.2 to node 1 ([5, 10], age 3): w = 1 / (3 + 1) = 1/4
    # [5, 10] + 1/4 ([1, 2] - [5, 10]) = [4, 8]; age max(3, 1) = 3 or 3/4 * 3 + 1/4 * 1 = 2.5
    spec = GossipSpec(period_s=10.0, merge=MergeSpec(age_rule=age_rule))
    st = run(spec, [[1.0, 2.0], [5.0, 10.0]], [1.0, 3.0], [0.2, 50.0])
    np.testing.assert_array_equal(st.params["w"], [[1.0, 2.0], [4.0, 8.0]])
    np.testing.assert_array_equal(st.age, [1.0, age1])


def test_engine_subsampling_merges_only_the_carried_coordinates():
    # sample_frac 1/2 over 8 coordinates: node 1 ([0] * 8, age 1) gets node 0's [8] * 8 (age 3):
    # w = 3 / (1 + 3) = 3/4, so carried coordinates become 6, the others stay 0; age max = 3
    spec = GossipSpec(period_s=10.0, sample_frac=0.5)
    st = run(spec, [[8.0] * 8, [0.0] * 8], [3.0, 1.0], [0.2, 50.0])
    got = np.asarray(st.params["w"][1])
    assert set(got.tolist()) == {0.0, 6.0}  # both kinds occur for this seed
    assert float(st.age[1]) == 3.0
    assert float(st.counters["bytes_up"]) == MBYTES * 0.5


def test_engine_partitioned_merge_uses_the_partitions_own_ages():
    # P = 2 over 4 coordinates; the fixed layout is a seeded permutation mod P (ALGORITHMS §1.4)
    layout = np.random.default_rng([7, 0]).permutation(4) % 2
    # node 0 sends [4, 4, 4, 4] with partition ages [1, 5]; node 1 is [0, 0, 0, 0], ages [3, 1]
    # partition 0: w = a_r / (a_l + a_r) = 1 / (3 + 1) = 1/4 -> 4 * 1/4 = 1; ages [3, 1]
    # partition 1: w = 5 / (1 + 5) = 5/6 -> 4 * 5/6 = 10/3; ages [3, 5]
    # node age = mean of its partition ages: 2 or 4 (max would give 3 or 5). The node ages
    # alone (means 3 and 2) would give w = 3 / (2 + 3) = 3/5 in either partition.
    spec = GossipSpec(period_s=10.0, partitions=2)
    st = run(
        spec, [[4.0] * 4, [0.0] * 4], [3.0, 2.0], [0.2, 50.0], part_age=[[1.0, 5.0], [3.0, 1.0]]
    )
    got = np.asarray(st.params["w"][1])
    p = int(layout[np.flatnonzero(got)[0]])  # the partition the message carried
    value, ages = {0: (1.0, [3.0, 1.0]), 1: (10 / 3, [3.0, 5.0])}[p]
    np.testing.assert_allclose(got, np.where(layout == p, value, 0.0), rtol=1e-6)
    np.testing.assert_array_equal(st.part_age[1], ages)
    assert float(st.age[1]) == np.mean(ages)
    assert float(st.counters["bytes_up"]) == MBYTES / 2


# --- §1.3 token account ----------------------------------------------------------------


def test_token_account_proactive_and_reactive_golden():
    spec = TokenSpec(flow="randomized", capacity=20.0, reactivity=10.0, max_reactive=5)
    # PROACTIVE: a < A - 1 = 9 -> 0; (a - A + 1) / (C - A + 1): a = 9 -> 0/11, a = 15 -> 6/11,
    # a = 20 -> 11/11 = 1; a > C -> 1
    a = jnp.array([8.0, 9.0, 15.0, 20.0, 21.0])
    np.testing.assert_allclose(proactive_prob(a, spec), [0, 0, 6 / 11, 1, 1], rtol=1e-6)
    # REACTIVE = randRound(a / A): integers are exact: 0 -> 0, 10 -> 1, 20 -> 2, 30 -> 3
    exact = reactive_count(jax.random.key(0), jnp.array([0.0, 10.0, 20.0, 30.0]), spec)
    np.testing.assert_array_equal(exact, [0, 1, 2, 3])
    # 15 / 10 = 1.5: 1 or 2, 2 with probability 1/2; 7 / 10: 0 or 1, mean 0.7
    for tokens, lo, mean in ((15.0, 1, 1.5), (7.0, 0, 0.7)):
        k = np.asarray(reactive_count(jax.random.key(1), jnp.full((20000,), tokens), spec))
        assert set(np.unique(k).tolist()) == {lo, lo + 1} and abs(k.mean() - mean) < 0.02
    # the cap: 30 / 10 = 3 sends, at most max_reactive = 2
    capped = TokenSpec(flow="randomized", max_reactive=2)
    assert int(reactive_count(jax.random.key(0), F(30.0), capped)) == 2
    # purely proactive = plain gossip learning: always send, never react
    plain = TokenSpec()
    assert float(proactive_prob(F(0.0), plain)) == 1.0
    assert int(reactive_count(jax.random.key(0), F(30.0), plain)) == 0


def test_engine_token_account_send_decisions():
    # node 0 holds 8 tokens (PROACTIVE(8) = 0: it banks one, 9), node 1 holds 21 (> C: it
    # sends, keeps 21). Node 0 receives node 1's model and spends REACTIVE(9) = randRound(0.9)
    # tokens on sends due next quantum.
    tok = TokenSpec(flow="randomized", capacity=20.0, reactivity=10.0, max_reactive=2)
    spec = GossipSpec(period_s=10.0, token=tok)
    st = run(spec, [[1.0, 2.0], [5.0, 10.0]], [1.0, 3.0], [0.2, 0.4], tokens=[8.0, 21.0])
    assert float(st.counters["messages_sent"]) == 1.0  # only node 1
    react = int(st.react[0])
    assert react in (0, 1) and float(st.tokens[0]) == 9.0 - react
    assert int(st.react[1]) == 0 and float(st.tokens[1]) == 21.0
    np.testing.assert_array_equal(st.params["w"][0], [4.0, 8.0])  # w = 3/4 as above


# --- queue = last / all while training (dasklearn gossip vs super-gossip) ------------------


@pytest.mark.parametrize(
    "queue, expect", [("last", [2.8, 5.6]), ("all", [44 / 15, 88 / 15])], ids=["last", "all"]
)
def test_training_node_queues_received_models(queue, expect):
    """Node 0 ([8, 16], age 2) trains in [0, 3.5]; node 1 ([2, 4], age 1) trains in [0, 1.5]
    and sends at 0.1 and 2.1 (period 2), so node 0 receives [2, 4] (age 1) and then [1, 2]
    (node 1 after its session, age 2) while training. At 3.5 node 0 finishes: [4, 8], age 3.
    last: merge [1, 2] (age 2): w = 2 / (3 + 2) = 0.4: [4 - 0.4 * 3, 8 - 0.4 * 6] = [2.8, 5.6].
    all: the queue is the age-weighted mean (1 * [2, 4] + 2 * [1, 2]) / 3 = [4/3, 8/3] with age
    max(1, 2) = 2; w = 0.4: [4 + 0.4 (4/3 - 4), 8 + 0.4 (8/3 - 8)] = [44/15, 88/15].
    Both keep age max(3, 2) = 3."""
    spec = GossipSpec(period_s=2.0, queue=queue)
    st = run(
        spec, [[8.0, 16.0], [2.0, 4.0]], [2.0, 1.0], [100.0, 0.1], quanta=4,
        training=[True, True], train_start=[0.0, 0.0], train_end=[3.5, 1.5],
        train_ok=[True, True],
    )  # fmt: skip
    assert float(st.counters["messages_sent"]) == 2 and float(st.counters["trainings"]) == 2
    np.testing.assert_allclose(st.params["w"][0], expect, rtol=1e-5)
    assert float(st.age[0]) == 3.0 and bool(st.training[0])  # and trains again from t = 4
    np.testing.assert_array_equal(st.params["w"][1], [1.0, 2.0])


def test_a_node_offline_when_its_session_would_start_loses_it():
    """Node 0 ([1, 2], age 1) sends at 0.2 to node 1 ([5, 10], age 3), which is online on
    [0, 0.5) only (back at 100). The message arrives 3.5 us later, node 1 online: it merges
    (w = 1 / (3 + 1): [4, 8], age 3). Its session starts at the quantum's end t1 = 1, when it is
    offline: the session is lost at once (0 s of compute; completed in the next quantum as
    lost), so at t = 2 its model is still [4, 8] (a session would have halved it to [2, 4])."""
    av = from_transitions(
        np.array([1, 1]), np.array([0.5, 100.0], np.float32), np.array([True, True]), 2
    )
    st = run(
        GossipSpec(period_s=10.0), [[1.0, 2.0], [5.0, 10.0]], [1.0, 3.0], [0.2, 50.0], 2, av=av
    )
    assert float(st.counters["messages_sent"]) == 1
    assert float(st.counters["trainings"]) == 0 and float(st.counters["trainings_lost"]) == 1
    assert float(st.counters["energy_compute_j"]) == 0.0
    np.testing.assert_array_equal(st.params["w"][1], [4.0, 8.0])
    assert float(st.age[1]) == 3.0 and not bool(st.training[1])
