"""Radio and compute energy (ALGORITHMS.md §5, Huang et al. MobiSys 2012): the worked table."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.devices.energy import (
    LTE,
    PRESETS,
    THREE_G,
    WIFI,
    compute_energy_j,
    kbps_to_mbps,
    radio_energy_j,
)

MB = 8e6  # bits in 1 MB


@pytest.mark.parametrize(
    ("model", "direction", "mbps", "joules"),
    [
        (WIFI, "up", 1.0, 3.33),
        (WIFI, "up", 5.0, 2.48),
        (WIFI, "up", 10.0, 2.37),
        (WIFI, "down", 5.0, 1.31),
        (WIFI, "down", 20.0, 1.15),
        (LTE, "up", 1.0, 13.8),
        (LTE, "up", 5.0, 5.57),
        (LTE, "down", 20.0, 0.93),
    ],
)
def test_per_mb_table(model, direction, mbps, joules):
    up, down = (MB, 0.0) if direction == "up" else (0.0, MB)
    e = radio_energy_j(model, up, down, mbps, mbps, bursts=0)
    assert e == pytest.approx(joules, abs=0.006 if joules < 10 else 0.06)


def test_worked_wifi_example():
    assert radio_energy_j(WIFI, MB, 0.0, 5.0, 1.0) == pytest.approx(2.478, abs=1e-3)
    assert radio_energy_j(WIFI, 0.0, MB, 1.0, 20.0) == pytest.approx(1.149, abs=1e-3)


def test_tails():
    assert LTE.tail_s * LTE.tail_mw / 1000 == pytest.approx(12.3, abs=0.05)
    assert LTE.burst_overhead_j() == pytest.approx(12.27 + 0.315, abs=0.01)
    assert WIFI.burst_overhead_j() == 0.0
    assert THREE_G.burst_overhead_j() > 5.0
    base = radio_energy_j(LTE, MB, MB, 5.0, 20.0, bursts=0)
    two = radio_energy_j(LTE, MB, MB, 5.0, 20.0, bursts=2)
    assert two - base == pytest.approx(2 * LTE.burst_overhead_j())
    assert set(PRESETS) == {"wifi", "lte", "3g"}


def test_compute_energy_and_arrays():
    assert compute_energy_j(3.0, 30.0) == 90.0
    p = jnp.array([1.0, 3.0, 5.0])
    f = jax.jit(lambda m, p: radio_energy_j(m, MB, MB, 5.0, 20.0, 1) + compute_energy_j(p, 10.0))
    out = np.asarray(f(LTE, p))
    assert out.shape == (3,)
    np.testing.assert_allclose(np.diff(out), [20.0, 20.0], rtol=1e-5)
    assert kbps_to_mbps(10_000.0) == pytest.approx(10.24)
