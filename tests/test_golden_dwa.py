"""Golden tests of DWA's server rule (ALGORITHMS.md §3.2, dl/engine/hybrid.py): the weight of
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

from dl.engine.async_server import AsyncServerSpec
from dl.rules.dwa import DWASpec, adopt_server, unsynced_upload, upload_weight

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


# --- the rule inside the engine (no gossip: the server-side part carries the assertions) ----


def dwa_engine(aspec, off_node, off_times):
    """2 nodes (online from 0, flips at `off_times` for nodes `off_node`), concurrency 2, 1 s
    download + 10 s training + 1 s upload, H = 2; server down on [5, 20), upload_policy lost;
    gossip period 1e5 s. Returns (chunk, initial state, initial params)."""
    from dl.devices.server import build_server
    from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async
    from dl.engine.gossip_clock import GossipEnv, GossipSpec, gossip_capacity, init_gossip
    from dl.engine.hybrid import init_dwa, make_dwa_chunk
    from dl.traces.availability import from_transitions
    from dl.train.local import LocalTrainSpec

    n = 2
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, 4, 2)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 2, size=(n, 4)).astype(np.int32))
    counts = jnp.full((n,), 4, jnp.int32)
    f = lambda v: jnp.full((n,), v, jnp.float32)  # noqa: E731
    av = from_transitions(off_node, off_times, np.ones(n, bool), n)
    srv = build_server({"kind": "intervals", "outages": [[5.0, 20.0]]}, 1e3, 0)
    aenv = AsyncEnv(x, y, counts, f(1.0), f(10.0), f(1.0), f(2.0), f(0.1), f(0.1), av, srv)
    genv = GossipEnv(x, y, counts, f(10.0), f(1e4), f(1e4), f(2.0), f(0.1), f(0.1), av)
    train = LocalTrainSpec(batch_size=2, local_steps=2, lr=0.3)
    eng = EngineSpec(quantum_s=1.0, concurrency=2, max_arrivals=2, upload_policy="lost")
    gspec = GossipSpec(period_s=1e5, quantum_s=1.0, max_trainings=n)
    params = {"w": jnp.full((2, 2), 0.1, jnp.float32), "b": jnp.zeros((2,), jnp.float32)}

    def apply(p, xb):
        return xb @ p["w"] + p["b"]

    chunk = make_dwa_chunk(apply, train, aspec, eng, gspec, DSPEC, aenv, genv, 8, "vmap")
    g0 = init_gossip(params, n, gspec, jax.random.key(0), gossip_capacity(gspec, genv, 8))
    return chunk, init_dwa(init_async(params, aspec, eng, n), g0), params


def test_engine_lost_uploads_become_unsynced_then_clean_uploads_use_version_staleness():
    """2 nodes, concurrency 2, 1 s download + 10 s training + 1 s upload, H = 2; server down on
    [5, 20) with upload_policy lost; both nodes go offline for good at t = 33. Gossip period
    1e5 s: no gossip message is sent (checked), so no number depends on gossip timing.

    t = 1: both dispatched (version 0, server age 0), due at 13.
    [13, 14): server down, uploads lost; each node keeps its trained model y_i, age 0 + 2 = 2,
      unsynced (dirty). Server unchanged.
    t = 20 (end of quantum [19, 20)): server up, both dispatched in a random order p, q; each
      first uploads its unsynced model:
      p: a_s = 0, a_y = 2: k = 0, r = max(1, (2 - 2)/1) = 1, lam = 0.5: x = 0.5 x0 + 0.5 y_p,
         version 1, a_s = 2
      q: a_s = 2, a_y = 2: k = 0 (age gap; the version gap 1 would give 0.5/sqrt(2)), r = 1,
         lam = 0.5: x20 = 0.25 x0 + 0.25 y_p + 0.5 y_q, version 2, a_s = 2
      then both adopt x20 (age 2, clean) and download version 2; due at 32.
    [32, 33): clean uploads y0', y1' in (time, node id) order, FedAsync with version
      staleness: node 0: k = 2 - 2 = 0, alpha_t = 0.5: x = 0.5 x20 + 0.5 y0'; version 3;
      node 1: k = 3 - 2 = 1, alpha_t = 0.5/sqrt(2) (the age gap would give k = 0, 0.5):
      x33 = (1 - a) x + a y1'; version 4; server age max(2, 2 + 2) = 4. Nobody is dispatched at
      33 (offline), so the nodes keep y0', y1'."""
    n = 2
    chunk, d, params = dwa_engine(ASPEC, np.array([0, 1]), np.array([33.0, 33.0]))
    key = jax.random.key(1)
    node = lambda tree, i: jax.tree.map(lambda p: p[i], tree)  # noqa: E731
    mixf = lambda a, b, w: jax.tree.map(lambda u, v: (1 - w) * u + w * v, a, b)  # noqa: E731

    d = chunk(d, key, 19.0)
    assert float(d.fl.counters["uploads_server_down"]) == 2
    np.testing.assert_array_equal(d.g.age, [2.0, 2.0])
    np.testing.assert_array_equal(d.g.dirty, [True, True])
    assert int(d.fl.server.version) == 0 and float(d.server_age) == 0.0
    ys = [node(d.g.params, i) for i in range(n)]
    # each node keeps the model it trained (not the one it downloaded), and they differ
    assert float(jnp.abs(ys[0]["w"] - params["w"]).min()) > 1e-4
    assert float(jnp.abs(ys[1]["w"] - params["w"]).min()) > 1e-4
    assert float(jnp.abs(ys[0]["w"] - ys[1]["w"]).max()) > 1e-3

    d = chunk(d, key, 20.0)
    assert int(d.fl.server.version) == 2 and float(d.server_age) == 2.0
    x20 = d.fl.server.params
    cands = [mixf(mixf(params, ys[p], 0.5), ys[1 - p], 0.5) for p in (0, 1)]
    err = [
        max(jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), x20, c)))
        for c in cands
    ]
    assert min(err) < 1e-6, err
    np.testing.assert_array_equal(d.g.age, [2.0, 2.0])
    np.testing.assert_array_equal(d.g.dirty, [False, False])
    for i in range(n):
        jax.tree.map(np.testing.assert_array_equal, node(d.g.params, i), x20)

    d = chunk(d, key, 33.0)
    assert float(d.g.counters["messages_sent"]) == 0 and float(d.g.counters["trainings"]) == 0
    assert int(d.fl.server.version) == 4 and float(d.server_age) == 4.0
    y0, y1 = node(d.g.params, 0), node(d.g.params, 1)
    want = mixf(mixf(x20, y0, 0.5), y1, 0.5 / np.sqrt(2.0))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        d.fl.server.params,
        want,
    )
    np.testing.assert_array_equal(d.g.age, [4.0, 4.0])


def test_engine_upload_dropped_for_staleness_does_not_age_the_server():
    """max_staleness 0. Node 0 is offline on [14, 25). Server down on [5, 20), uploads lost.
    t = 1: both dispatched (version 0, age 0), due 13: both uploads lost; both unsynced, age 2.
    t = 20: node 1 (node 0 is offline) uploads its unsynced model: a_s = 0, a_y = 2 -> version 1,
      a_s = 2; it adopts (slot age 2, version 1), due 32.
    t = 25: node 0 is back: unsynced upload a_y = 2, a_s = 2 -> version 2, a_s = max(2, 2) = 2;
      adopts (version 2), due 37.
    [32, 33): node 1's clean upload has k = 2 - 1 = 1 > 0: dropped (stale_dropped 1). It was not
      merged, so the server age stays 2 (its lineage age 2 + 2 = 4 must not count).
    [37, 38): node 0's clean upload, k = 2 - 2 = 0, accepted: version 3, age max(2, 2 + 2) = 4."""
    aspec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="poly", max_staleness=0)
    chunk, d, _ = dwa_engine(aspec, np.array([0, 0]), np.array([14.0, 25.0]))
    key = jax.random.key(1)
    d = chunk(d, key, 33.0)
    s = d.fl.server
    assert int(s.version) == 2 and int(s.stale_dropped) == 1 and int(s.hist.sum()) == 0
    assert float(d.server_age) == 2.0
    d = chunk(d, key, 38.0)
    assert int(d.fl.server.version) == 3 and float(d.server_age) == 4.0
    assert float(d.g.counters["messages_sent"]) == 0
