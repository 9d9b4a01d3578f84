"""Softmax cross-entropy with integer labels (`dl.train.loss.xent_integer_labels`): golden values
and gradients by hand, agreement with optax's, and no scatter in its gradient."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dl.train.loss import mean_xent, xent_integer_labels


def test_golden_two_classes():
    # logits (0, ln 3): softmax = (1/4, 3/4), logsumexp = ln(1 + 3) = ln 4.
    # label 0: ln 4 - 0 = ln 4; label 1: ln 4 - ln 3 = ln(4/3).
    # d loss / d logits = softmax - onehot(label): label 0 -> (-3/4, 3/4); label 1 -> (1/4, -1/4)
    z = jnp.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    y = jnp.array([0, 1])
    np.testing.assert_allclose(xent_integer_labels(z, y), [math.log(4), math.log(4 / 3)], 1e-6)
    g = jax.grad(lambda z: xent_integer_labels(z, y).sum())(z)
    np.testing.assert_allclose(g, [[-0.75, 0.75], [0.25, -0.25]], atol=1e-6)
    # mean over the batch: (ln 4 + ln 4/3) / 2
    np.testing.assert_allclose(mean_xent(z, y), (math.log(4) + math.log(4 / 3)) / 2, 1e-6)


def test_matches_optax_values_and_gradients():
    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.standard_normal((64, 10), np.float32) * 5)
    y = jnp.asarray(rng.integers(0, 10, 64))
    ref = optax.softmax_cross_entropy_with_integer_labels
    np.testing.assert_allclose(xent_integer_labels(z, y), ref(z, y), rtol=1e-6, atol=1e-6)
    ours = jax.grad(lambda z: xent_integer_labels(z, y).mean())(z)
    theirs = jax.grad(lambda z: ref(z, y).mean())(z)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_gradient_has_no_scatter():
    # optax's take_along_axis is a scatter-add in the gradient: one per local step under vmap
    z, y = jnp.zeros((4, 3)), jnp.array([0, 1, 2, 0])
    jaxpr = str(
        jax.make_jaxpr(jax.vmap(jax.grad(lambda z: xent_integer_labels(z, y).sum())))(
            jnp.stack([z, z])
        )
    )
    assert "scatter" not in jaxpr
