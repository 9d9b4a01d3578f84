"""Task choice (ALGORITHMS.md §6.4): feasibility filter and softmax over utility, golden cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.errors import ConfigError
from dl.overlay import choice as ch

P = ch.ChoiceParams(
    temperature=1.0,
    w_reward=1.0,
    w_interest=1.0,
    w_congestion=1.0,
    min_reward_per_j=math.exp(-3.0),  # idle utility = -3
    sticky=0.5,
)


def test_static_feasible__memory_deadline_energy():
    mem = jnp.array([100.0, 500.0, 500.0, 500.0])  # [N]
    task_mem = jnp.array([50.0, 300.0])  # [T]
    t_sess = jnp.array([[10.0, 10.0], [10.0, 10.0], [10.0, 200.0], [10.0, 10.0]])
    e_sess = jnp.array([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0], [5.0, 50.0]])
    budget = jnp.array([20.0, 20.0, 20.0, 20.0])
    got = ch.static_feasible(mem, task_mem, t_sess, jnp.array([60.0, 60.0]), e_sess, budget)
    want = [[True, False], [True, True], [True, False], [True, False]]  # mem, -, time, energy
    np.testing.assert_array_equal(np.asarray(got), want)


def test_utility__hand_computed():
    reward = jnp.array([2.0, 1.0])
    e = jnp.array([[1.0, 1.0]])  # ln(2), ln(1) = 0
    interest = jnp.array([[0.5, 0.25]])
    parts = jnp.array([10, 0])
    target = jnp.array([20.0, 20.0])
    u = ch.utility(P, reward, e, interest, parts, target, jnp.array([1]))  # keeps task 1
    want = [math.log(2.0) + 0.5 - 0.5, 0.0 + 0.25 - 0.0 + 0.5]
    np.testing.assert_allclose(np.asarray(u)[0], want, rtol=1e-6)


def test_probabilities__softmax_over_feasible_and_idle():
    u = jnp.array([[0.0, -1.0, 5.0]])
    feas = jnp.array([[True, True, False]])
    p = np.asarray(ch.choice_probabilities(P, u, feas))[0]
    z = 1.0 + math.exp(-1.0) + math.exp(-3.0)
    np.testing.assert_allclose(p, [1 / z, math.exp(-1) / z, 0.0, math.exp(-3) / z], rtol=1e-6)


def test_choose__sampling_matches_probabilities_and_never_picks_infeasible():
    n = 20000
    u = jnp.tile(jnp.array([[0.0, -1.0, 5.0]]), (n, 1))
    feas = jnp.tile(jnp.array([[True, True, False]]), (n, 1))
    pick = np.asarray(ch.choose(jax.random.key(0), P, u, feas))
    assert not (pick == 2).any()
    freq = [(pick == 0).mean(), (pick == 1).mean(), (pick == -1).mean()]
    z = 1.0 + math.exp(-1.0) + math.exp(-3.0)
    want = [1 / z, math.exp(-1) / z, math.exp(-3) / z]
    np.testing.assert_allclose(freq, want, atol=4 * math.sqrt(0.25 / n))


def test_choose__low_temperature_is_argmax_and_no_feasible_means_idle():
    cold = P.replace(temperature=1e-4)
    u = jnp.array([[0.3, 0.2, 9.0], [0.1, 0.2, 0.0], [1.0, 1.0, 1.0]])
    feas = jnp.array([[True, True, False], [True, True, True], [False, False, False]])
    for s in range(5):
        got = np.asarray(ch.choose(jax.random.key(s), cold, u, feas))
        np.testing.assert_array_equal(got, [0, 1, -1])
    np.testing.assert_array_equal(np.asarray(ch.greedy(cold, u, feas)), [0, 1, -1])


def test_congestion__lowers_a_tasks_share():
    reward, e = jnp.array([1.0, 1.0]), jnp.ones((1, 2))
    interest, target = jnp.zeros((1, 2)), jnp.array([10.0, 10.0])
    feas = jnp.ones((1, 2), bool)

    def share(parts):
        u = ch.utility(P, reward, e, interest, jnp.array(parts), target, jnp.array([-1]))
        return float(ch.choice_probabilities(P, u, feas)[0, 0])

    assert share([10, 0]) < share([5, 0]) < share([0, 0])
    # one target's worth of participants costs exactly w_c = 1: the same denominator either
    # way, so moving the crowd from task 1 to task 0 scales task 0's share by e^-1
    np.testing.assert_allclose(share([10, 0]) / share([0, 10]), math.exp(-1.0), rtol=1e-5)


def test_participants__counts_active_assigned_nodes():
    assign = jnp.array([0, 1, 1, -1, 0])
    active = jnp.array([True, True, False, True, True])
    np.testing.assert_array_equal(np.asarray(ch.participants(assign, active, 3)), [2, 1, 0])


def test_node_resources__and_bad_params():
    mem, budget = ch.node_resources(jax.random.key(1), 1000, [128.0, 1024.0], (10.0, 20.0))
    assert set(np.unique(np.asarray(mem))) == {128.0, 1024.0}
    assert 10.0 <= float(budget.min()) and float(budget.max()) <= 20.0
    with pytest.raises(ConfigError, match="memory_mb"):
        ch.node_resources(jax.random.key(1), 10, [], (1.0, 2.0))
    with pytest.raises(ConfigError, match="temperature"):
        ch.check_params(P.replace(temperature=0.0))
