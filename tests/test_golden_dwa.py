"""Golden tests of DWA's server rule (ALGORITHMS.md §3.2, dl/sim/dwa_engine.py): the weight of
an upload carrying gossip progress, `lam = min(lam_max, alpha * s(k) * r**nu)`, the upload
itself and the adopt that follows it. Clean uploads go through the FedAsync rule
(tests/test_golden_async.py; the server-always-up reduction is in tests/test_gossip_dwa.py).
No gossip timing is involved. Expected values are derived by hand in the comments.

Shared setting, away from the defaults: alpha = 0.5, s = poly a = 0.5 (s(k) = 1/sqrt(k + 1)),
H = 2 local steps, nu = 2, lam_max = 0.8, age_cap_steps = 4 (claimed age <= a_s + 4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.algorithms.async_server import AsyncServerSpec
from dl.sim.dwa_engine import DWASpec, adopt_server, unsynced_upload, upload_weight

ASPEC = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="poly", stale_a=0.5)
DSPEC = DWASpec(nu=2.0, lam_max=0.8, age_cap_steps=4.0)
H = jnp.float32(2.0)


def lam(a_s, a_y, dspec=DSPEC):
    out, _ = upload_weight(jnp.float32(a_s), jnp.float32(a_y), H, ASPEC, dspec)
    return float(out)


def test_age_boost_with_exponent_nu():
    # a_s = 8, a_y = 11 (under the cap 8 + 4 = 12): k = ceil(max(0, 8 - 11) / 2) = 0, s = 1;
    # r = max(1, (11 - 2) / 8) = 9/8; r**2 = 81/64; lam = 0.5 * 81/64 = 0.6328125 < 0.8.
    # (nu = 1 would give 0.5625)
    assert lam(8.0, 11.0) == pytest.approx(0.6328125, rel=1e-6)


def test_lam_max_caps_the_weight():
    # a_s = 4, a_y = 8 (= the cap 4 + 4): k = 0, r = (8 - 2) / 4 = 1.5, r**2 = 2.25;
    # alpha * r**2 = 1.125 > lam_max -> lam = 0.8. (nu = 1: 0.75; no lam_max: 1.125)
    assert lam(4.0, 8.0) == pytest.approx(0.8, rel=1e-6)


def test_age_cap_binds():
    # a_s = 8, claimed a_y = 100 -> capped to 8 + 4 = 12: r = (12 - 2) / 8 = 1.25,
    # r**2 = 1.5625, lam = 0.78125 (< 0.8; without the cap r = 98/8 and lam = lam_max = 0.8).
    got, a_y = upload_weight(jnp.float32(8.0), jnp.float32(100.0), H, ASPEC, DSPEC)
    assert float(got) == pytest.approx(0.78125, rel=1e-6) and float(a_y) == 12.0


def test_age_gap_staleness():
    # a_s = 9, a_y = 4 (the upload is behind the server): k = ceil((9 - 4) / 2) = ceil(2.5) = 3,
    # s = 1/sqrt(4) = 1/2; r = max(1, (4 - 2) / 9) = 1; lam = 0.5 * 1/2 * 1 = 0.25.
    # (floor: k = 2, lam = 0.2887; k + 1: lam = 0.2236)
    assert lam(9.0, 4.0) == pytest.approx(0.25, rel=1e-6)
    # a gap of exactly 2 H: a_s = 8, a_y = 4 -> k = ceil(4/2) = 2 -> lam = 0.5/sqrt(3)
    assert lam(8.0, 4.0) == pytest.approx(0.5 / np.sqrt(3.0), rel=1e-6)


def test_defaults_reduce_to_fedasync_weight_when_ages_are_equal():
    # nu = 1, lam_max = 1, no cap: equal ages a_s = a_y = 6 -> k = 0, r = max(1, 4/6) = 1,
    # lam = alpha = 0.5 (§3.3 "all ages equal, k = 0: lam = alpha")
    assert lam(6.0, 6.0, DWASpec()) == 0.5


def test_unsynced_uploads_then_adopt():
    # Server x = [0, 0], version 5, age a_s = 4. Three dispatched nodes; nodes 0 and 1 carry
    # gossip progress (go), node 2 is clean (not uploaded here).
    # upload 0: y = [8, 8], a_y = 8 (= cap 4 + 4): k = 0, r = (8 - 2)/4 = 1.5, lam = min(0.8,
    #   0.5 * 2.25) = 0.8: x = 0.2 [0, 0] + 0.8 [8, 8] = [6.4, 6.4]; version 6; a_s = max(4, 8) = 8
    # upload 1: y = [4, 0], a_y = 2: k = ceil((8 - 2)/2) = 3, s = 1/2, r = max(1, 0/8) = 1,
    #   lam = 0.25: x = 0.75 [6.4, 6.4] + 0.25 [4, 0] = [5.8, 4.8]; version 7; a_s = max(8, 2) = 8
    # node 2 (go False): nothing changes.
    x0 = {"w": jnp.zeros((2,), jnp.float32)}
    ys = {"w": jnp.asarray([[8.0, 8.0], [4.0, 0.0], [9.0, 9.0]], jnp.float32)}
    ages = jnp.asarray([8.0, 2.0, 50.0], jnp.float32)
    go = jnp.asarray([True, True, False])

    def one(c, a):
        return unsynced_upload(c, a, H, ASPEC, DSPEC), None

    (x, version, a_s), _ = jax.lax.scan(one, (x0, jnp.int32(5), jnp.float32(4.0)), (ys, ages, go))
    np.testing.assert_allclose(x["w"], [5.8, 4.8], rtol=1e-6)
    assert int(version) == 7 and float(a_s) == 8.0
    # adopt: nodes 0 and 1 (of N = 3; index 3 = no node) take the server model and age 8 and are
    # clean again; node 2 keeps its model [1, 1], age 3 and dirty flag.
    params = {"w": jnp.asarray([[8.0, 8.0], [4.0, 0.0], [1.0, 1.0]], jnp.float32)}
    age = jnp.asarray([8.0, 2.0, 3.0], jnp.float32)
    dirty = jnp.asarray([True, True, True])
    took = jnp.asarray([0, 1, 3], jnp.int32)
    p, a, d = adopt_server(params, age, dirty, took, x, a_s)
    np.testing.assert_allclose(p["w"], [[5.8, 4.8], [5.8, 4.8], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_array_equal(a, [8.0, 8.0, 3.0])
    np.testing.assert_array_equal(d, [False, False, True])


def test_upload_with_capped_age_sets_capped_server_age():
    # a_s = 8, claimed a_y = 100, y = [4, 4], x = [0, 0]: capped a_y = 12, lam = 0.78125
    # (test_age_cap_binds): x = 0.78125 [4, 4] = [3.125, 3.125]; server age max(8, 12) = 12.
    x0 = {"w": jnp.zeros((2,), jnp.float32)}
    y = {"w": jnp.full((2,), 4.0, jnp.float32)}
    x, version, a_s = unsynced_upload(
        (x0, jnp.int32(0), jnp.float32(8.0)),
        (y, jnp.float32(100.0), jnp.bool_(True)),
        H,
        ASPEC,
        DSPEC,
    )
    np.testing.assert_allclose(x["w"], [3.125, 3.125], rtol=1e-6)
    assert int(version) == 1 and float(a_s) == 12.0
