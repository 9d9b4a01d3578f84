"""Energy model pinned by hand (ALGORITHMS.md §5): the Huang et al. (MobiSys 2012) radio
coefficients written out literally, the worked per-MB numbers, compute = P x t_comp, and the
per-node session figures of `make_energy_env`, including an upload compressed to a fraction s."""

import jax.numpy as jnp
import numpy as np
import pytest

from dl.devices.energy import LTE, THREE_G, WIFI, compute_energy_j, radio_energy_j
from dl.devices.energy_env import make_energy_env
from dl.devices.profiles import DeviceProfiles

# Huang, Qian, Gerber, Mao, Sen, Spatscheck, "A Close Examination of Performance and Power
# Characteristics of 4G LTE Networks", MobiSys 2012, power model table (mW/Mbps, mW) and LTE
# RRC tail / promotion. Written here literally, never imported from the module under test.
HUANG = {
    "wifi": dict(alpha_up=283.17, alpha_down=137.01, beta=132.86),
    "lte": dict(
        alpha_up=438.39,
        alpha_down=51.97,
        beta=1288.04,
        tail_mw=1060.0,
        tail_s=11.576,
        promo_mw=1210.7,
        promo_s=0.26,
    ),
    "3g": dict(alpha_up=868.98, alpha_down=122.12, beta=817.88),
}
MBIT = 1e6


@pytest.mark.parametrize(("name", "model"), [("wifi", WIFI), ("lte", LTE), ("3g", THREE_G)])
def test_radio_coefficients_are_huang_2012(name, model):
    for field, value in HUANG[name].items():
        assert float(getattr(model, field)) == value, (name, field)


def test_worked_wifi_transfers():
    # 1 MB = 8 Mbit. Upload at 5 Mbps: P = 283.17 * 5 + 132.86 = 1548.71 mW for 8 / 5 = 1.6 s
    # -> 1548.71 * 1.6 = 2477.936 mJ = 2.478 J
    assert radio_energy_j(WIFI, 8 * MBIT, 0.0, 5.0, 1.0) == pytest.approx(2.477936, rel=1e-6)
    # download at 20 Mbps: P = 137.01 * 20 + 132.86 = 2873.06 mW for 8 / 20 = 0.4 s
    # -> 2873.06 * 0.4 = 1149.224 mJ = 1.149 J
    assert radio_energy_j(WIFI, 0.0, 8 * MBIT, 1.0, 20.0) == pytest.approx(1.149224, rel=1e-6)
    # WiFi has no tail or promotion: bursts cost nothing extra
    assert radio_energy_j(WIFI, 8 * MBIT, 0.0, 5.0, 1.0, bursts=3) == pytest.approx(2.477936)


def test_worked_lte_transfer_with_tail():
    # LTE upload of 1 Mbit at 1 Mbps: (438.39 * 1 + 1288.04) mW * 1 s = 1726.43 mJ; one burst
    # adds the tail 1060 mW * 11.576 s = 12270.56 mJ and the promotion 1210.7 mW * 0.26 s =
    # 314.782 mJ: 1726.43 + 12270.56 + 314.782 = 14311.772 mJ
    assert radio_energy_j(LTE, MBIT, 0.0, 1.0, 1.0, bursts=1) == pytest.approx(14.311772)
    # download of 2 Mbit at 4 Mbps: (51.97 * 4 + 1288.04) mW * 0.5 s = 747.96 mJ, no burst
    assert radio_energy_j(LTE, 0.0, 2 * MBIT, 1.0, 4.0) == pytest.approx(0.74796)


def test_compute_energy_is_power_times_time():
    # 3 W for 30 s = 90 J; per node [2 W x 1.5 s, 4 W x 0.25 s] = [3 J, 1 J]
    assert compute_energy_j(3.0, 30.0) == 90.0
    np.testing.assert_allclose(
        compute_energy_j(np.array([2.0, 4.0]), np.array([1.5, 0.25])), [3, 1]
    )


# Two devices. FedScale units: 1 kbit = 1024 bit, so 976.5625 kbit/s = 1e6 bit/s = 1 Mbps.
ONE_MBPS = 976.5625
PROFILES = DeviceProfiles(
    ms_per_sample=jnp.array([500.0, 100.0]),
    up_kbps=jnp.array([1.0, 2.0]) * ONE_MBPS,
    down_kbps=jnp.array([4.0, 8.0]) * ONE_MBPS,
    power_w=jnp.array([2.0, 4.0]),
    device_id=jnp.array([-1, -1]),
)
MODEL_BYTES = 125_000  # 1e6 bits = 1 Mbit


def test_energy_env_by_hand():
    # batch 2, 1 local step. t_comp = 3 * 2 * 1 * ms / 1000 = [3.0, 0.6] s
    # t_up = 1e6 bit / 1024 / kbps = [1 Mbit / 1 Mbps, 1 Mbit / 2 Mbps] = [1.0, 0.5] s
    # t_down = [1 / 4, 1 / 8] = [0.25, 0.125] s
    e = make_energy_env(PROFILES, MODEL_BYTES, 2, 1, {"radio": "wifi"})
    np.testing.assert_allclose(e.t_comp, [3.0, 0.6], rtol=1e-6)
    np.testing.assert_allclose(e.t_up, [1.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(e.t_down, [0.25, 0.125], rtol=1e-6)
    np.testing.assert_allclose(e.t_client, [4.25, 1.225], rtol=1e-6)
    np.testing.assert_allclose(e.power_w, [2.0, 4.0])
    # WiFi up: (283.17 * 1 + 132.86) * 1.0 = 416.03 mJ; (283.17 * 2 + 132.86) * 0.5 = 349.6 mJ
    np.testing.assert_allclose(e.e_up_j, [0.41603, 0.3496], rtol=1e-6)
    # WiFi down: (137.01 * 4 + 132.86) * 0.25 = 170.225 mJ; (137.01 * 8 + 132.86) * 0.125
    # = 153.6175 mJ
    np.testing.assert_allclose(e.e_down_j, [0.170225, 0.1536175], rtol=1e-6)
    np.testing.assert_allclose(e.e_burst_j, [0.0, 0.0])


def test_compressed_upload_scales_time_and_transfer_energy_not_the_tail():
    # upload fraction s = 0.25 of a B = 125,000-byte model at 1 Mbps (976.5625 kbit/s):
    # t_up = s * B * 8 / 1024 / kbps = 0.25 * 1e6 / 1024 / 976.5625 = 0.25 s (node 1: 0.125 s)
    e = make_energy_env(PROFILES, MODEL_BYTES, 2, 1, {"radio": "lte"}).upload_scaled(0.25)
    np.testing.assert_allclose(e.t_up, [0.25, 0.125], rtol=1e-6)
    # LTE: the transfer part scales, the burst (12270.56 + 314.782 = 12585.342 mJ) does not:
    # node 0: 0.25 * (438.39 * 1 + 1288.04) * 1.0 + 12585.342 = 431.6075 + 12585.342 mJ
    # node 1: 0.25 * (438.39 * 2 + 1288.04) * 0.5 + 12585.342 = 270.6025 + 12585.342 mJ
    np.testing.assert_allclose(e.e_up_j, [13.0169495, 12.8559445], rtol=1e-6)
    # the download, compute and t_down are untouched
    np.testing.assert_allclose(e.t_down, [0.25, 0.125], rtol=1e-6)
    np.testing.assert_allclose(e.t_comp, [3.0, 0.6], rtol=1e-6)


def test_gossip_message_scales_both_directions_not_the_tail():
    # a gossip message carrying 1/4 of the model (sample_frac 0.25, or 4 partitions), LTE:
    # up as in the compressed-upload test: [431.6075, 270.6025] mJ + 12585.342 mJ burst;
    # down at [4, 8] Mbps for [0.25, 0.125] s of the full model, times 1/4:
    # node 0: 0.25 * (51.97 * 4 + 1288.04) * 0.25 = 0.25 * 373.98 = 93.495 mJ;
    # node 1: 0.25 * (51.97 * 8 + 1288.04) * 0.125 = 53.24375 mJ; each + 12585.342 mJ burst
    e = make_energy_env(PROFILES, MODEL_BYTES, 2, 1, {"radio": "lte"}).message_scaled(0.25)
    np.testing.assert_allclose(e.e_up_j, [13.0169495, 12.8559445], rtol=1e-6)
    np.testing.assert_allclose(e.e_down_j, [12.678837, 12.63858575], rtol=1e-6)
    np.testing.assert_allclose(e.t_down, [0.0625, 0.03125], rtol=1e-6)
    full = make_energy_env(PROFILES, MODEL_BYTES, 2, 1, {"radio": "lte"})
    assert full.message_scaled(1.0) is full
