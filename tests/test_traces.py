"""Availability: compiled queries, STUNner replay, synthetic builders, FedScale npz round trip."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scripts_loader import load_script

from dl.errors import ConfigError, DataError
from dl.traces import (
    Availability,
    StunnerTrace,
    always_on,
    bernoulli,
    build_fedscale,
    build_stunner,
    diurnal,
    drop_short_sessions,
    fedscale_profiles,
    hourly_profile,
    is_online,
    load_stunner,
    next_transition,
    online_during,
    online_fraction,
    online_time_fraction,
    parse_peersim_sessions,
    session_end,
    trace_online_fraction,
)

STUNNER = "stunner_smartphone_availability"
needs_data = pytest.mark.needs_data(STUNNER)  # tests/conftest.py: skip, or fail in CI
WEEK, DAY, H = 7 * 86400.0, 86400.0, 3600.0


def _ref_online(times: np.ndarray, first: np.ndarray, t: float) -> np.ndarray:
    return first ^ ((times <= t).sum(1) % 2 == 1)


def test_queries_match_reference():
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(0, 100, (6, 9)).astype(np.float32), axis=1)
    times[0, 3:] = np.inf
    times[1, :] = np.inf
    first = rng.random(6) < 0.5
    av = Availability(times=jnp.asarray(times), first_online=jnp.asarray(first))
    on, nxt = jax.jit(is_online), jax.jit(next_transition)
    frac, during = jax.jit(online_fraction), jax.jit(online_during)
    end = jax.jit(session_end)
    for t in [0.0, *rng.uniform(0, 110, 50).tolist(), float(times[2, 4])]:
        ref = _ref_online(times, first, t)
        np.testing.assert_array_equal(np.asarray(on(av, t)), ref)
        after = np.where(times > t, times, np.inf).min(1)
        np.testing.assert_array_equal(np.asarray(nxt(av, t)), after)
        # the session holding t ends at the next flip; offline at t: t itself
        np.testing.assert_array_equal(np.asarray(end(av, t)), np.where(ref, after, np.float32(t)))
        assert float(frac(av, t)) == pytest.approx(ref.mean())
        t1 = t + 7.0
        full = ref & _ref_online(times, first, t1) & ~((times > t) & (times <= t1)).any(1)
        np.testing.assert_array_equal(np.asarray(during(av, t, t1)), full)
    per_node = jnp.asarray(rng.uniform(0, 100, 6).astype(np.float32))
    ref = np.array(
        [_ref_online(times[i : i + 1], first[i : i + 1], float(per_node[i]))[0] for i in range(6)]
    )
    np.testing.assert_array_equal(np.asarray(is_online(av, per_node)), ref)


def test_synthetic_builders():
    av = always_on(5)
    assert bool(jnp.all(is_online(av, 1e9))) and bool(jnp.all(jnp.isinf(next_transition(av, 0.0))))
    b = bernoulli(400, 2 * DAY, 600.0, 0.3, seed=1)
    assert online_time_fraction(b, 2 * DAY) == pytest.approx(0.3, abs=0.01)
    t = 600.0 * 17 + 5.0  # a whole period: no transition strictly inside it
    assert bool(jnp.all(next_transition(b, t) >= 600.0 * 18))
    np.testing.assert_array_equal(
        np.asarray(bernoulli(50, DAY, 900.0, 0.5, 3).times),
        np.asarray(bernoulli(50, DAY, 900.0, 0.5, 3).times),
    )
    d = diurnal(400, 3 * DAY, seed=2, mean_online=0.3, amplitude=0.2)
    prof = hourly_profile(d, 3 * DAY)
    assert online_time_fraction(d, 3 * DAY) == pytest.approx(0.3, abs=0.01)
    assert prof.argmax() in (2, 3, 4) and prof.max() / prof.min() > 3
    with pytest.raises(ConfigError):
        bernoulli(3, DAY, 60.0, 1.5, 0)


def _one_segment(durs_h, first=True, tz=2) -> StunnerTrace:
    d = np.array(durs_h, np.int64) * 3_600_000
    return StunnerTrace(
        np.zeros(1, np.int32),
        np.array([first]),
        np.zeros(1, np.int64),
        np.array([tz], np.int8),
        np.array([0, d.size]),
        d,
    )


def _segment_state(tr: StunnerTrace, offset_s: np.ndarray) -> np.ndarray:
    ends = np.cumsum(tr.durations_ms) / 1000.0
    return tr.first_online[0] ^ (np.searchsorted(ends, offset_s, side="right") % 2 == 1)


@pytest.mark.parametrize(
    ("days", "align_tz", "window_s"),
    [(1, False, None), (1, True, None), (1, True, 5 * H), (3, False, None), (3, True, None)],
)
def test_stunner_replay_single_segment(days, align_tz, window_s):
    durs = [3, 2, 5, 14] * days
    tr = _one_segment(durs)
    av = build_stunner(
        None, 100, 3, 10 * DAY, seed=0, window_s=window_s, align_tz=align_tz, trace=tr
    )
    length = days * DAY
    ts = np.random.default_rng(0).uniform(0, 10 * DAY, 300)
    shift = (-2 * H) % DAY if align_tz else 0.0
    on = np.asarray(jax.vmap(lambda t: is_online(av, t))(jnp.asarray(ts, jnp.float32)))
    expect = _segment_state(tr, (ts.astype(np.float32) % length + shift) % length)
    np.testing.assert_array_equal(on, np.repeat(expect[:, None], 3, axis=1))


def test_drop_short_sessions():
    d = np.array([600, 5, 3, 7200, 30, 1200, 10], np.int64) * 1000
    tr = StunnerTrace(
        np.zeros(1, np.int32),
        np.array([True]),
        np.zeros(1, np.int64),
        np.zeros(1, np.int8),
        np.array([0, d.size]),
        d,
    )
    out = drop_short_sessions(tr, 60.0)
    # on 600, [off 5, on 3] -> on; off 7200, [on 30] -> off; off 1200, [on 10] -> off
    np.testing.assert_array_equal(out.durations_ms, np.array([608, 8440]) * 1000)
    assert bool(out.first_online[0]) and out.offsets.tolist() == [0, 2]
    assert out.durations_ms.sum() == d.sum()
    lead = StunnerTrace(
        tr.user_index,
        tr.first_online,
        tr.start_ms,
        tr.tz_hours,
        np.array([0, 4]),
        np.array([5, 600, 20, 9000], np.int64) * 1000,
    )
    out = drop_short_sessions(lead, 60.0)  # leading short "on" joins the next kept "off"
    assert not out.first_online[0] and out.durations_ms.tolist() == [9_625_000]


@needs_data
@pytest.mark.parametrize("threshold", [100, 80])
def test_peersim_text_equals_npz(threshold, data_root):
    a = parse_peersim_sessions(data_root / STUNNER / f"peersim_session_{threshold}.txt")
    b = load_stunner(data_root, threshold)
    for f in ("user_index", "first_online", "start_ms", "tz_hours", "offsets", "durations_ms"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert b.user_index.max() + 1 == 776 and b.first_online.size == 4334


@needs_data
@pytest.mark.parametrize(("threshold", "own"), [(100, 0.232), (80, 0.353)])
def test_stunner_online_fraction_and_daily_cycle(threshold, own, data_root):
    tr = load_stunner(data_root, threshold)
    assert trace_online_fraction(tr) == pytest.approx(own, abs=0.001)
    av = build_stunner(data_root, threshold, 1000, WEEK, seed=0)
    assert online_time_fraction(av, WEEK) == pytest.approx(trace_online_fraction(tr), abs=0.02)
    prof = hourly_profile(av, WEEK)
    assert prof.max() / prof.min() > 1.3  # measured: 1.84 (thr100), 1.49 (thr80), UTC
    again = build_stunner(data_root, threshold, 1000, WEEK, seed=0)
    np.testing.assert_array_equal(np.asarray(av.times), np.asarray(again.times))


@needs_data
def test_stunner_options_and_errors(tmp_path, data_root):
    short = build_stunner(
        data_root, 100, 300, 2 * DAY, seed=1, window_s=2 * DAY, min_session_s=60.0, align_tz=True
    )
    full = build_stunner(data_root, 100, 300, 2 * DAY, seed=1)
    assert short.times.shape[1] < full.times.shape[1]
    assert abs(online_time_fraction(short, 2 * DAY) - 0.232) < 0.05
    with pytest.raises(ConfigError):
        build_stunner(data_root, 50, 3, DAY, seed=0)
    with pytest.raises(DataError, match="stunner_sessions_thr100.npz"):
        build_stunner(tmp_path, 100, 3, DAY, seed=0)
    bad = tmp_path / "stunner_smartphone_availability"
    bad.mkdir()
    (bad / "stunner_sessions_thr80.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt STUNner npz"):
        build_stunner(tmp_path, 80, 3, DAY, seed=0)


def _converter():
    return load_script("convert_fedscale")


def _fedscale_member(rec: dict, t: float) -> bool:
    x = t % rec["finish_time"]
    a, i = rec["active"], rec["inactive"]
    if i[0] < a[0] and x < i[0]:  # starts online, first interval is [0, inactive[0])
        return True
    i = i[1:] if i[0] < a[0] else i
    return any(s <= x < e for s, e in zip(a, i, strict=False))


def test_fedscale_round_trip(tmp_path):
    behave = {
        7: {
            "active": [100, 500, 2000],
            "inactive": [300, 900, 2500],
            "finish_time": 3000,
            "model": "Pixel",
            "duration": 3000,
        },
        8: {
            "active": [0, 1000],
            "inactive": [400, 1700],
            "finish_time": 2000,
            "model": "X",
            "duration": 1,
        },
        9: {
            "active": [600],
            "inactive": [250, 5000],
            "finish_time": 5000,
            "model": "Y",
            "duration": 1,
        },
        10: {"active": [0], "inactive": [86400], "finish_time": 86400, "model": "Z", "duration": 1},
    }
    cap = {k: {"computation": 10.0 * k, "communication": 1000.0 * k} for k in behave}
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(behave))
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(cap))
    conv = _converter()
    out = tmp_path / "npz"
    assert (
        conv.main(
            [
                "--behave",
                str(tmp_path / "b.pkl"),
                "--capacity",
                str(tmp_path / "c.pkl"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    keys = list(behave)
    av = build_fedscale(out / "fedscale_behave.npz", 4, 4 * DAY, seed=0, assign="modulo")
    ts = np.random.default_rng(0).uniform(0, 4 * DAY, 2000)
    on = np.asarray(jax.vmap(lambda t: is_online(av, t))(jnp.asarray(ts, jnp.float32)))
    ref = np.array([[_fedscale_member(behave[k], float(np.float32(t))) for k in keys] for t in ts])
    np.testing.assert_array_equal(on, ref)
    rnd = build_fedscale(out / "fedscale_behave.npz", 10, DAY, seed=1)  # with replacement
    assert rnd.times.shape[0] == 10
    prof = fedscale_profiles(out / "fedscale_capacity.npz", 4, seed=0, assign="modulo")
    np.testing.assert_allclose(np.asarray(prof.ms_per_sample), [70.0, 80.0, 90.0, 100.0])
    np.testing.assert_allclose(np.asarray(prof.up_kbps), np.asarray(prof.down_kbps))
    assert np.asarray(prof.device_id).tolist() == [0, 1, 2, 3]


def test_fedscale_errors(tmp_path):
    conv = _converter()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({1: Evil()}))
    assert conv.main(["--behave", str(tmp_path / "evil.pkl"), "--out", str(tmp_path)]) == 2
    with pytest.raises(DataError, match="convert_fedscale.py"):
        build_fedscale(tmp_path / "nope.npz", 3, DAY, seed=0)
    np.savez(tmp_path / "x.npz", format=np.array("something-else"))
    with pytest.raises(DataError, match="not a dl-fedscale-behave-v1"):
        build_fedscale(tmp_path / "x.npz", 3, DAY, seed=0)
