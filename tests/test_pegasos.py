"""The Pegasos learning-rate schedule of the gossip-learning papers (ALGORITHMS.md §1.2):
golden numbers on a hand-made case, the age as the lr clock, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.errors import ConfigError
from dl.train.local import LocalTrainSpec, make_batch_train, make_node_train


def linear_apply(params, x):
    return x @ params["w"] + params["b"]


def softmax_grad(w, b, x, label):
    z = x @ w + b
    p = np.exp(z - z.max())
    p /= p.sum()
    d = p - np.eye(len(b))[label]
    return np.outer(x, d), d


def test_two_pegasos_steps_match_the_formula_from_a_given_age():
    lam, t0 = 0.5, 3.0
    spec = LocalTrainSpec(batch_size=1, local_steps=2, weight_decay=lam, lr_schedule="pegasos")
    w0 = np.array([[0.2, -0.1], [0.4, 0.3]], np.float32)
    b0 = np.array([0.05, -0.05], np.float32)
    x = np.array([[1.0, -2.0]], np.float32)
    y = np.array([1], np.int32)
    params = {"w": jnp.asarray(w0), "b": jnp.asarray(b0)}
    new, _ = make_node_train(linear_apply, spec)(
        params, jnp.asarray(x), jnp.asarray(y), jnp.int32(1), jax.random.key(0), t0
    )
    w, b = w0.astype(np.float64), b0.astype(np.float64)
    for j in range(2):  # one example: every batch is that example
        eta = 1.0 / (lam * (t0 + j + 1))
        gw, gb = softmax_grad(w, b, x[0], 1)
        w, b = (1 - eta * lam) * w - eta * gw, (1 - eta * lam) * b - eta * gb
    np.testing.assert_allclose(new["w"], w, rtol=1e-5)
    np.testing.assert_allclose(new["b"], b, rtol=1e-5)


def test_first_step_from_age_zero_forgets_the_start_model():
    # eta = 1/lambda at t = 1, so (1 - eta lambda) = 0: w1 = -grad(w0) / lambda
    spec = LocalTrainSpec(batch_size=1, local_steps=1, weight_decay=0.1, lr_schedule="pegasos")
    x, y = jnp.array([[1.0, 2.0]]), jnp.array([0])
    zero = {"w": jnp.zeros((2, 2)), "b": jnp.zeros((2,))}
    new, _ = make_node_train(linear_apply, spec)(zero, x, y, jnp.int32(1), jax.random.key(0))
    np.testing.assert_allclose(new["w"], -10.0 * np.outer([1.0, 2.0], [-0.5, 0.5]), rtol=1e-6)


def test_batch_ages_are_per_node_and_constant_schedule_ignores_them():
    rng = np.random.default_rng(0)
    k, m, d, c = 3, 6, 4, 3
    x = jnp.asarray(rng.normal(size=(k, m, d)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, c, (k, m)).astype(np.int32))
    counts = jnp.full((k,), m, jnp.int32)
    params = {"w": jnp.ones((k, d, c)) * 0.1, "b": jnp.zeros((k, c))}
    keys = jax.random.split(jax.random.key(1), k)
    ages = jnp.array([0.0, 10.0, 1000.0])
    on = jnp.ones(k, bool)
    peg = LocalTrainSpec(batch_size=2, local_steps=3, weight_decay=0.01, lr_schedule="pegasos")
    out, _ = make_batch_train(linear_apply, peg, "vmap")(params, x, y, counts, on, keys, ages)
    one = make_node_train(linear_apply, peg)
    for i in range(k):
        p_i = {"w": params["w"][i], "b": params["b"][i]}
        ref, _ = one(p_i, x[i], y[i], counts[i], keys[i], ages[i])
        np.testing.assert_allclose(out["w"][i], ref["w"], rtol=1e-6)
    # an older model takes smaller steps
    moved = [float(jnp.abs(out["w"][i] - params["w"][i]).sum()) for i in range(k)]
    assert moved[2] < moved[1] < moved[0]
    const = LocalTrainSpec(batch_size=2, local_steps=3, lr=0.1)
    a, _ = make_batch_train(linear_apply, const, "vmap")(params, x, y, counts, on, keys, ages)
    b, _ = make_batch_train(linear_apply, const, "vmap")(params, x, y, counts, on, keys)
    np.testing.assert_array_equal(a["w"], b["w"])


@pytest.mark.parametrize(
    "spec, match",
    [
        (LocalTrainSpec(lr_schedule="cosine"), "unknown task.train.lr_schedule 'cosine'"),
        (LocalTrainSpec(lr_schedule="pegasos", weight_decay=0.0), "weight_decay > 0"),
        (LocalTrainSpec(lr_schedule="pegasos", weight_decay=1e-4, optimizer="adam"), "sgd"),
    ],
)
def test_bad_schedules_name_the_cause(spec, match):
    with pytest.raises(ConfigError, match=match):
        make_node_train(linear_apply, spec)
