"""The linear models' matmul (`dl.models.small_dot`): a custom VJP whose kernel gradient is a
multiply-reduce. Golden gradients by hand on a 2 x 2 case; agreement with autodiff of the plain
matmul under vmap; the fallback; LogReg uses it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dl.models.linear import LogReg
from dl.models.small_dot import small_dot_general, xw


def test_gradients_golden_two_by_two():
    # y = x @ w, loss = sum(G * y) so dL/dy = G.
    # x = [[1, 2], [3, 4]], w = [[1, 2], [3, 4]], G = [[1, 0], [0, 2]]
    # dL/dw = x^T G = [[1*1 + 3*0, 1*0 + 3*2], [2*1 + 4*0, 2*0 + 4*2]] = [[1, 6], [2, 8]]
    # dL/dx = G w^T: row 0 = 1 * [1, 3] = [1, 3]; row 1 = 2 * [2, 4] = [4, 8]
    x = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    w = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    g = jnp.array([[1.0, 0.0], [0.0, 2.0]])
    dx, dw = jax.grad(lambda x, w: (g * xw(x, w)).sum(), argnums=(0, 1))(x, w)
    np.testing.assert_array_equal(dw, [[1.0, 6.0], [2.0, 8.0]])
    np.testing.assert_array_equal(dx, [[1.0, 3.0], [4.0, 8.0]])
    np.testing.assert_array_equal(xw(x, w), x @ w)


@pytest.mark.parametrize("lead", [(5,), (3, 4), ()])
def test_vmapped_gradients_match_autodiff_of_the_plain_matmul(lead):
    k, i, o = 6, 7, 3
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((k, *lead, i), np.float32))
    w = jnp.asarray(rng.standard_normal((k, i, o), np.float32))
    c = jnp.asarray(rng.standard_normal((k, *lead, o), np.float32))

    def grads(f):
        loss = lambda x, w, c: jnp.sum(jnp.tanh(f(x, w)) * c)  # noqa: E731
        return jax.vmap(jax.grad(loss, argnums=(0, 1)))(x, w, c)

    plain = grads(lambda x, w: x @ w)
    ours = grads(xw)
    for a, b in zip(ours, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bfloat16_kernel_gradient_has_float32_sum_accuracy():
    # 4,096 positive products summed: in bfloat16 arithmetic (8 significant bits) each addition
    # to a running sum near 1,000 would round to a step of 4-8; multiplied and summed in float32
    # and rounded once, the result is within one unit in the last place of the exact (float64)
    # sum. XLA:CPU already sums bfloat16 in float32 (this test passes without the module's
    # cast, checked), so it pins the result on this backend; the cast keeps it on others.
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.uniform(0.5, 1.0, (4096, 2)), jnp.bfloat16)
    g = jnp.asarray(rng.uniform(0.5, 1.0, (4096, 2)), jnp.bfloat16)
    w = jnp.zeros((2, 2), jnp.bfloat16)
    dw = jax.vjp(xw, x, w)[1](g)[1]
    assert dw.dtype == jnp.bfloat16
    exact = np.asarray(x, np.float64).T @ np.asarray(g, np.float64)  # [2, 2], about 2,300
    ulp = 2.0 ** (np.floor(np.log2(exact)) - 7)  # bfloat16 spacing at that magnitude
    assert np.all(np.abs(np.asarray(dw, np.float64) - exact) <= ulp)


def test_other_contractions_fall_back_to_dot_general():
    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.standard_normal((2, 3, 4), np.float32))
    b = jnp.asarray(rng.standard_normal((2, 4, 5), np.float32))
    dims = (((2,), (1,)), ((0,), (0,)))  # batched: not a Dense contraction
    np.testing.assert_array_equal(small_dot_general(a, b, dims), lax.dot_general(a, b, dims))
    jaxpr = jax.make_jaxpr(lambda a, b: small_dot_general(a, b, dims))(a, b)
    assert "custom_vjp" not in str(jaxpr)
    hi = lax.Precision.HIGHEST  # an explicit precision also keeps the plain matmul
    m = jnp.ones((3, 4))
    jaxpr = jax.make_jaxpr(lambda a, b: small_dot_general(a, b, (((1,), (0,)), ((), ())), hi))
    assert "custom_vjp" not in str(jaxpr(m, b[0]))


def test_logreg_gradient_goes_through_the_custom_vjp_and_equals_plain_dense():
    class Plain(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, name="dense")(x.reshape((x.shape[0], -1)))

    x = jnp.asarray(np.random.default_rng(2).standard_normal((4, 2, 3), np.float32))
    params = LogReg(3).init(jax.random.key(0), x)
    loss = lambda m: lambda p: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
    assert "custom_vjp" in str(jax.make_jaxpr(jax.grad(loss(LogReg(3))))(params))
    ours, plain = jax.grad(loss(LogReg(3)))(params), jax.grad(loss(Plain()))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), ours, plain)
