"""Golden tests of the server-availability scenarios (dl/devices/server.py) and of what happens to
uploads that reach a down server (`server.upload_policy`, dl/engine/async_clock.py). Expected
values are derived by hand in the comments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.devices.server import build_server
from dl.engine.async_clock import AsyncEnv, EngineSpec, init_async, make_async_chunk, server_up
from dl.engine.async_server import AsyncServerSpec
from dl.traces.availability import from_transitions
from dl.train.local import LocalTrainSpec


def states_at(av, ts):
    return [bool(v) for v in np.asarray(server_up(av, jnp.asarray(ts, jnp.float32)))]


# --- periodic -------------------------------------------------------------------------------


def test_periodic_default_phase():
    # period 10, down_fraction 0.3, phase 0: up on [0, 7), down on [7, 10), up on [10, 17), ...
    av = build_server({"kind": "periodic", "period_s": 10, "down_fraction": 0.3}, 100.0, 0)
    ts = [0.0, 6.5, 7.0, 9.5, 10.0, 16.5, 17.0, 95.0, 97.5]
    assert states_at(av, ts) == [True, True, False, False, True, True, False, True, False]


@pytest.mark.parametrize("phase", [2.0, 22.0, -8.0, -28.0])
def test_periodic_with_phase(phase):
    # period 10, down_fraction 0.3, phase 2 (22, -8 and -28 are the same schedule, phase mod 10):
    # up on [2 + 10j, 9 + 10j), down on [9 + 10j, 12 + 10j). So at t = 0 the server is in the
    # down part [-1, 2) of the cycle that started at -8: down at 0 and 1.5, up at 2, 5 and 8.5,
    # down at 9 and 11.5, up at 12, down at 19; near the end of the horizon 100: up at 95
    # (cycle [92, 99)), down at 99.5 (down part [99, 102)).
    cfg = {"kind": "periodic", "period_s": 10, "down_fraction": 0.3, "phase_s": phase}
    av = build_server(cfg, 100.0, 0)
    ts = [0.0, 1.5, 2.0, 5.0, 8.5, 9.0, 11.5, 12.0, 19.0, 95.0, 99.5]
    want = [False, False, True, True, True, False, False, True, False, True, False]
    assert states_at(av, ts) == want


def test_periodic_extreme_fractions():
    # down_fraction 0: never down; down_fraction 1: never up
    ts = [0.0, 3.0, 10.0, 15.0, 55.0]
    up = build_server({"kind": "periodic", "period_s": 10, "down_fraction": 0.0}, 60.0, 0)
    assert states_at(up, ts) == [True] * 5
    down = build_server({"kind": "periodic", "period_s": 10, "down_fraction": 1.0}, 60.0, 0)
    assert states_at(down, ts) == [False] * 5


# --- markov ---------------------------------------------------------------------------------

MARKOV = {"kind": "markov", "mean_up_s": 100.0, "mean_down_s": 50.0}


def durations(av, horizon):
    """Up and down durations of the complete pieces (the last one is cut by the horizon)."""
    t = np.asarray(av.times[0], np.float64)
    t = t[np.isfinite(t)]
    edges = np.concatenate([[0.0], t])
    d = np.diff(edges)  # piece j starts at edges[j]; it is up when j is even (starts up)
    return d[0::2], d[1::2], edges


def test_markov_statistics_and_alternation():
    horizon = 1e6
    av = build_server(MARKOV, horizon, 3)
    assert bool(av.first_online[0])  # starts up at t = 0
    up, down, edges = durations(av, horizon)
    # ~ 1e6 / 150 = 6,667 cycles: the standard error of an exponential mean over n samples is
    # mean / sqrt(n), ~1.2 %; a 6 % tolerance is 5 standard errors.
    assert len(up) > 6000 and len(down) > 6000
    assert abs(up.mean() / 100.0 - 1.0) < 0.06
    assert abs(down.mean() / 50.0 - 1.0) < 0.06
    # exponential: the standard deviation equals the mean
    assert abs(up.std() / up.mean() - 1.0) < 0.1
    # time up ~ 100 / (100 + 50) = 2/3
    assert abs(up.sum() / edges[-1] - 2.0 / 3.0) < 0.02
    # piecewise constant and alternating: the state in the middle of piece j is up iff j even,
    # and just after every transition it differs from just before it
    # (two flips that round to the same float32 instant cancel out: allowed, but rare)
    assert np.all(np.diff(edges) >= 0) and (np.diff(edges) == 0).sum() < 10
    long = np.flatnonzero(np.diff(edges) > 1.0)[:2000]
    mids = (edges[long] + edges[long + 1]) / 2
    np.testing.assert_array_equal(states_at(av, mids), long % 2 == 0)
    d = np.diff(edges)
    j = 1 + np.flatnonzero((d[:-1] > 0.5) & (d[1:] > 0.5))[:2000]  # transitions between pieces
    before, after = states_at(av, edges[j] - 0.25), states_at(av, edges[j])
    assert np.all(np.array(before) != np.array(after))


def test_markov_seeding():
    a = build_server(MARKOV, 1e4, 5)
    b = build_server(MARKOV, 1e4, 5)
    c = build_server(MARKOV, 1e4, 6)
    np.testing.assert_array_equal(a.times, b.times)
    assert a.times.shape != c.times.shape or not np.array_equal(a.times, c.times)


# --- uploads to a down server ---------------------------------------------------------------


def one_node_env(outage):
    """One node: 1 s download, 10 s training at 2 W, 1 s upload; radio 0.5 J down, 0.25 J up."""
    f = lambda v: jnp.full((1,), v, jnp.float32)  # noqa: E731
    return AsyncEnv(
        x=jnp.ones((1, 2, 2), jnp.float32),
        y=jnp.zeros((1, 2), jnp.int32),
        counts=jnp.full((1,), 2, jnp.int32),
        t_down=f(1.0),
        t_comp=f(10.0),
        t_up=f(1.0),
        power_w=f(2.0),
        e_down_j=f(0.5),
        e_up_j=f(0.25),
        nodes=from_transitions(np.zeros(0, np.int64), np.zeros(0), np.ones(1, bool), 1),
        server=build_server({"kind": "intervals", "outages": [outage]}, 1e3, 0),
    )


def run_policy(policy, t_stops):
    params = {"w": jnp.zeros((2, 2), jnp.float32)}
    spec = AsyncServerSpec(kind="fedasync", staleness="constant")
    eng = EngineSpec(quantum_s=1.0, concurrency=1, max_arrivals=1, upload_policy=policy)
    train = LocalTrainSpec(batch_size=2, local_steps=1, lr=0.1)
    chunk = make_async_chunk(
        lambda p, x: x @ p["w"], train, spec, eng, one_node_env([5, 20]), 8, "vmap"
    )
    st = init_async(params, spec, eng, 1)
    out = []
    for t in t_stops:
        st = chunk(st, jax.random.key(0), jnp.float32(t))
        c = {k: float(v) for k, v in st.counters.items()}
        out.append((int(st.server.applied), int(st.server.version), c))
    return out


def test_upload_to_down_server_lost():
    # Server down on [5, 20). The node is dispatched at t = 1 (server up), due at 1 + 1 + 10 + 1
    # = 13, processed in quantum [13, 14): the server is down at 13, so with `lost` the upload
    # is lost: uploads_server_down = 1, arrivals = 1, nothing applied, and the wasted energy is
    # the whole session: 2 W * 10 s + 0.25 J up + 0.5 J down = 20.75 J. The bytes were sent
    # (bytes_up = 8). Nobody is dispatched while the server is down; at t = 20 it is up again
    # (half-open outage): the quantum [19, 20) ends with the second dispatch at t = 20 (due 32,
    # applied in [32, 33)); up to t = 19 the last dispatch attempt was at t = 19 (down).
    (a0, v0, c0), (a1, v1, c1), (a2, v2, c2) = run_policy("lost", [19.0, 20.0, 33.0])
    assert (a0, v0) == (0, 0)
    assert c0["uploads_server_down"] == 1 and c0["arrivals"] == 1 and c0["bytes_up"] == 8
    assert c0["energy_wasted_j"] == 20.75 and c0["dispatched"] == 1
    assert (a1, v1) == (0, 0) and c1["dispatched"] == 2
    assert (a2, v2) == (1, 1) and c2["uploads_server_down"] == 1 and c2["arrivals"] == 2


def test_upload_to_down_server_retried():
    # Same timeline with `retry`: in [13, 14) the upload is kept (no arrival, not counted as
    # lost) and retried every quantum; in [19, 20) it is still down (retry time 19); in
    # [20, 21) the retry time is 20 and the server is up: applied, version 1, nothing wasted.
    # The node stays busy meanwhile, so the dispatch at t = 20 finds nobody; the next one is at
    # t = 21 (dispatched = 2).
    (a0, v0, c0), (a1, v1, c1) = run_policy("retry", [20.0, 21.0])
    assert (a0, v0) == (0, 0)
    assert c0["uploads_server_down"] == 0 and c0["arrivals"] == 0 and c0["dispatched"] == 1
    assert (a1, v1) == (1, 1)
    assert c1["arrivals"] == 1 and c1["energy_wasted_j"] == 0 and c1["dispatched"] == 2
    assert c1["bytes_up"] == 8  # the upload is counted once
