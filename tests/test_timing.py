"""FedScale time model (ALGORITHMS.md §4.3): the worked example and array behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.devices.timing import client_time_s, comm_time_s, compute_time_s, kbit_to_bits, model_kbit


def test_worked_example_compute():
    assert compute_time_s(100.0, 20, 5) == pytest.approx(30.0)


def test_worked_example_comm():
    mib = 2**20
    assert model_kbit(mib) == pytest.approx(8192.0)
    bits = kbit_to_bits(model_kbit(mib))
    assert bits == 8 * mib
    assert comm_time_s(bits, bits, 10_000.0, 10_000.0) == pytest.approx(1.6384)
    # FedScale's single `communication` bandwidth: (up + down) / communication
    assert comm_time_s(bits, bits, 1e4, 1e4) == pytest.approx((8192 + 8192) / 1e4)


def test_separate_up_down_bandwidth():
    bits = 8 * 2**20
    t = comm_time_s(bits, 0.0, 1_000.0, 1.0)
    assert t == pytest.approx(8.192)
    assert comm_time_s(0.0, bits, 1.0, 4_096.0) == pytest.approx(2.0)


def test_client_time_is_sum():
    bits = 8 * 2**20
    t = client_time_s(100.0, 20, 5, bits, bits, 1e4, 1e4)
    assert t == pytest.approx(31.6384)


def test_array_agnostic():
    ms = np.array([1.0, 2.0, 4.0], np.float32)
    out_np = compute_time_s(ms, 10, 2)
    out_jax = jax.jit(lambda m: compute_time_s(m, 10, 2))(jnp.asarray(ms))
    np.testing.assert_allclose(out_np, [0.06, 0.12, 0.24], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(out_jax), out_np, rtol=1e-6)
    up = jnp.array([1e3, 2e3])
    t = comm_time_s(1024.0 * 1e3, 1024.0 * 1e3, up, 1e3)
    np.testing.assert_allclose(np.asarray(t), [2.0, 1.5], rtol=1e-6)
