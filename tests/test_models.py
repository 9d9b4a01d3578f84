"""Tests for dl.models: shapes, param counts, custom-VJP conv, registry errors, FLOPs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.errors import ConfigError
from dl.models import (
    MODELS,
    init_params,
    make_model,
    model_bytes,
    model_flops_per_example,
    param_count,
)
from dl.models.conv import conv2d, conv2d_reference

# (name, input_shape, num_classes, input dtype, expected output shape for batch 2)
CASES = [
    ("logreg", (57,), 2, jnp.float32, (2, 2)),
    ("mlp", (16,), 10, jnp.float32, (2, 10)),
    ("mlp", (28, 28, 1), 10, jnp.float32, (2, 10)),
    ("cnn_small", (28, 28, 1), 10, jnp.float32, (2, 10)),
    ("cnn_femnist", (28, 28, 1), 62, jnp.float32, (2, 62)),
    ("cnn_mnist", (28, 28, 1), 10, jnp.float32, (2, 10)),
    ("char_gru", (12,), 65, jnp.int32, (2, 12, 65)),
    ("char_lstm", (12,), 65, jnp.int32, (2, 12, 65)),
]


def test_registry_names() -> None:
    expected = {"logreg", "mlp", "cnn_small", "cnn_femnist", "cnn_mnist", "char_gru", "char_lstm"}
    assert set(MODELS) == expected


@pytest.mark.parametrize("name,shape,classes,dtype,out", CASES)
def test_output_shapes(name, shape, classes, dtype, out) -> None:
    # Abstract evaluation: checks shapes and dtypes without compiling the initialisers.
    model = make_model(name, shape, classes)
    x = jax.ShapeDtypeStruct((2, *shape), dtype)
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    y = jax.eval_shape(model.apply, variables, x)
    assert y.shape == out
    assert y.dtype == jnp.float32
    params = variables["params"]
    assert model_bytes(params) == 4 * param_count(params) > 0


@pytest.mark.parametrize(
    "name,shape,classes,dtype", [("logreg", (5,), 2, jnp.float32), ("char_gru", (4,), 7, jnp.int32)]
)
def test_init_and_apply_run(name, shape, classes, dtype) -> None:
    model = make_model(name, shape, classes, **({"hidden": 8} if "char" in name else {}))
    params = init_params(model, shape, jax.random.key(0))
    y = jax.jit(model.apply)({"params": params}, jnp.ones((3, *shape), dtype))
    assert bool(jnp.all(jnp.isfinite(y)))


def test_cnn_mnist_param_count_mcmahan() -> None:
    model = make_model("cnn_mnist", (28, 28, 1), 10)
    x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
    assert param_count(jax.eval_shape(model.init, jax.random.key(0), x)) == 1_663_370


@pytest.fixture(scope="module")
def cnn_nodes():
    """Random cnn_small params for 3 nodes, stacked on a leading node axis."""
    shape = (28, 28, 1)
    model = make_model("cnn_small", shape, 10)
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    # Random values from numpy: flax's truncated-normal initialisers take seconds to compile.
    rng = np.random.default_rng(4)
    stacked = jax.tree.map(
        lambda a: jnp.asarray(0.1 * rng.standard_normal((3, *a.shape)), jnp.float32), abstract
    )
    return model, shape, stacked


def test_fast_conv_matches_flax_conv(cnn_nodes) -> None:
    fast, shape, stacked = cnn_nodes
    params = jax.tree.map(lambda a: a[0], stacked)
    slow = make_model("cnn_small", shape, 10, fast_conv=False)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((3, *shape)), jnp.float32)
    abstract = jax.eval_shape(slow.init, jax.random.key(0), x)["params"]
    assert jax.tree.structure(abstract) == jax.tree.structure(params)

    def loss(model, p):
        return jnp.sum(model.apply({"params": p}, x) ** 2)

    y_fast, g_fast = jax.jit(jax.value_and_grad(lambda p: loss(fast, p)))(params)
    y_slow, g_slow = jax.jit(jax.value_and_grad(lambda p: loss(slow, p)))(params)
    np.testing.assert_allclose(y_fast, y_slow, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_slow), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize(
    "batch,hw,cin,cout,kernel", [(1, (9, 7), 3, 5, (5, 3)), (7, (11, 13), 2, 4, (4, 5))]
)
def test_custom_vjp_conv_matches_autodiff(batch, hw, cin, cout, kernel, padding) -> None:
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((batch, *hw, cin)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((*kernel, cin, cout)), jnp.float32)
    y_ref = conv2d_reference(x, w, padding)
    cot = jnp.asarray(rng.standard_normal(y_ref.shape), jnp.float32)

    def grads(fn):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w, padding) * cot), argnums=(0, 1)))(
            x, w
        )

    np.testing.assert_allclose(conv2d(x, w, padding), y_ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads(conv2d), grads(conv2d_reference), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_vmapped_apply_over_stacked_nodes(cnn_nodes) -> None:
    model, shape, stacked = cnn_nodes
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(stacked))
    x = jnp.asarray(np.random.default_rng(5).standard_normal((3, 4, *shape)), jnp.float32)
    apply = jax.jit(lambda p, xb: model.apply({"params": p}, xb))
    y = jax.jit(jax.vmap(apply))(stacked, x)
    for i in range(3):
        want = apply(jax.tree.map(lambda a, i=i: a[i], stacked), x[i])
        np.testing.assert_allclose(y[i], want, rtol=1e-5, atol=1e-5)


def test_vmapped_grad_over_stacked_nodes(cnn_nodes) -> None:
    # The custom VJP must also batch: vmap(grad) over nodes equals per-node grads.
    model, shape, stacked = cnn_nodes
    x = jnp.asarray(np.random.default_rng(6).standard_normal((3, 2, *shape)), jnp.float32)

    def grad(p, xb):
        return jax.grad(lambda q: jnp.sum(model.apply({"params": q}, xb) ** 2))(p)

    g = jax.jit(jax.vmap(grad))(stacked, x)
    g1 = jax.jit(grad)(jax.tree.map(lambda a: a[1], stacked), x[1])
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g1), strict=True):
        np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize(
    "name,shape,dtype,fragment",
    [
        ("cnn_small", (57,), None, "model 'cnn_small' needs image input [H,W,C]"),
        ("cnn_mnist", (784,), None, "dataset 'ds' gives (784,)"),
        ("cnn_femnist", (2, 2, 1), None, "H,W >= 4"),
        ("char_gru", (28, 28, 1), None, "model 'char_gru' needs integer token sequences"),
        ("char_lstm", (57,), jnp.float32, "gives float32 (57,)"),
    ],
)
def test_shape_mismatch_raises(name, shape, dtype, fragment) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        make_model(name, shape, 10, dataset_name="ds", input_dtype=dtype)
    msg = str(err.value)
    assert fragment in msg and "\n" not in msg


def test_spambase_message_is_exact() -> None:
    with pytest.raises(ConfigError) as err:
        make_model("cnn_small", (57,), 2, dataset_name="spambase")
    assert str(err.value) == (
        "model 'cnn_small' needs image input [H,W,C] with H,W >= 4, dataset 'spambase' gives (57,)"
    )


def test_unknown_model_and_option() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet'; valid models: char_gru"):
        make_model("resnet", (28, 28, 1), 10)
    with pytest.raises(ConfigError, match="model 'mlp' has no option 'width'; options: hidden"):
        make_model("mlp", (16,), 10, width=3)
    with pytest.raises(ConfigError, match="num_classes >= 2"):
        make_model("logreg", (16,), 1)


def test_flops_logreg_golden() -> None:
    # Multiply-add = 2 FLOPs; biases are not counted.
    assert model_flops_per_example("logreg", (64,), 10) == 2 * 64 * 10


def test_flops_cnn_mnist_golden() -> None:
    conv1 = 2 * 28 * 28 * 5 * 5 * 1 * 32  # 1,254,400
    conv2 = 2 * 14 * 14 * 5 * 5 * 32 * 64  # 20,070,400
    dense1 = 2 * 7 * 7 * 64 * 512  # 3,211,264
    dense2 = 2 * 512 * 10  # 10,240
    assert conv1 + conv2 + dense1 + dense2 == 24_546_304
    assert model_flops_per_example("cnn_mnist", (28, 28, 1), 10) == 24_546_304


def test_flops_mlp_and_rnn() -> None:
    assert model_flops_per_example("mlp", (8,), 3, hidden=[4]) == 2 * (8 * 4 + 4 * 3)
    gru = 80 * (2 * 3 * (8 * 128 + 128 * 128) + 2 * 128 * 65)
    assert model_flops_per_example("char_gru", (80,), 65) == gru


def test_reshape_max_pool_equals_flax_max_pool_values_and_grads():
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from dl.models.cnn import max_pool_2x2

    x = jax.random.normal(jax.random.key(0), (3, 7, 9, 4))
    ref = lambda v: nn.max_pool(v, (2, 2), strides=(2, 2), padding="VALID")  # noqa: E731
    assert bool((max_pool_2x2(x) == ref(x)).all())
    g1 = jax.grad(lambda v: (max_pool_2x2(jax.nn.relu(v)) ** 2).sum())(x)
    g2 = jax.grad(lambda v: (ref(jax.nn.relu(v)) ** 2).sum())(x)
    assert bool(jnp.array_equal(g1, g2))
