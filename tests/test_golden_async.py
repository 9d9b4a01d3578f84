"""Golden tests of the server-side asynchronous rules (ALGORITHMS.md §2.1 FedAsync, §2.2 FedBuff;
dl/engine/async_server.py, dl/rules/staleness.py) on 2-parameter models. Every
expected value is derived by hand in the comment next to it."""

import jax.numpy as jnp
import numpy as np
import pytest

from dl.engine.async_server import (
    AsyncServerSpec,
    apply_arrivals,
    init_server,
    staleness_mean,
)
from dl.rules.staleness import staleness_weight


def server(params, spec, version=0):
    st = init_server({"w": jnp.asarray(params, jnp.float32)}, spec)
    return st.replace(version=jnp.int32(version))


def arrivals(st, spec, models, taus, starts=None, ok=None):
    """Applies uploads `models` [A, 2] downloaded at versions `taus` [A] in order."""
    models = jnp.asarray(models, jnp.float32)
    starts = models if starts is None else jnp.asarray(starts, jnp.float32)
    ok = jnp.ones(len(taus), bool) if ok is None else jnp.asarray(ok)
    return apply_arrivals(st, {"w": starts}, {"w": models}, jnp.asarray(taus, jnp.int32), ok, spec)


def w(st):
    return np.asarray(st.params["w"])


# --- staleness functions (§2.1 table) -------------------------------------------------------


def test_staleness_functions():
    k = jnp.arange(6)
    # constant: 1
    np.testing.assert_array_equal(staleness_weight("constant", k), [1, 1, 1, 1, 1, 1])
    # poly a = 1: 1 / (k + 1) = 1, 1/2, 1/3, 1/4, 1/5, 1/6
    np.testing.assert_allclose(
        staleness_weight("poly", k, a=1.0), [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6], rtol=1e-6
    )
    # poly a = 0.5 (FedBuff's 1/sqrt(1 + k)): k = 3 -> 1/2
    assert float(staleness_weight("poly", jnp.int32(3), a=0.5)) == 0.5
    # hinge a = 1, b = 2: 1 for k <= 2; k = 3 -> 1/(1*1 + 1) = 1/2, k = 4 -> 1/3, k = 5 -> 1/4
    np.testing.assert_allclose(
        staleness_weight("hinge", k, a=1.0, b=2.0), [1, 1, 1, 1 / 2, 1 / 3, 1 / 4], rtol=1e-6
    )
    # hinge a = 2, b = 1: 1 for k <= 1; k = 2 -> 1/(2*1 + 1) = 1/3, k = 3 -> 1/5, k = 5 -> 1/9
    np.testing.assert_allclose(
        staleness_weight("hinge", k, a=2.0, b=1.0), [1, 1, 1 / 3, 1 / 5, 1 / 7, 1 / 9], rtol=1e-6
    )


# --- FedAsync (§2.1) ------------------------------------------------------------------------


def test_fedasync_constant():
    # alpha = 0.5, s = 1: x = 0.5 [1, 2] + 0.5 [3, 6] = [2, 4]; version 0 -> 1
    spec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="constant")
    st = arrivals(server([1.0, 2.0], spec), spec, [[3.0, 6.0]], [0])
    np.testing.assert_array_equal(w(st), [2.0, 4.0])
    assert int(st.version) == 1 and int(st.applied) == 1


def test_fedasync_poly_staleness_is_version_minus_tau():
    # version 3, tau 0 -> k = 3 exactly; poly a = 0.5: s = (3 + 1)^-0.5 = 1/2; alpha_t = 0.5 *
    # 1/2 = 1/4: x = 3/4 [1, 2] + 1/4 [5, 10] = [0.75 + 1.25, 1.5 + 2.5] = [2, 4].
    # (k = 2 would give alpha_t = 0.5/sqrt(3) = 0.2887, k = 4 gives 0.5/sqrt(5) = 0.2236)
    spec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="poly", stale_a=0.5)
    st = arrivals(server([1.0, 2.0], spec, version=3), spec, [[5.0, 10.0]], [0])
    np.testing.assert_allclose(w(st), [2.0, 4.0], rtol=1e-6)
    assert int(st.version) == 4


@pytest.mark.parametrize("tau,want", [(1, [3.0, 6.0]), (0, [2.0, 4.0])])
def test_fedasync_hinge(tau, want):
    # hinge a = 1, b = 2, alpha = 1 (so alpha_t = s), version 3, x = [1, 2], y = [3, 6]:
    # tau = 1: k = 2 <= b -> s = 1 -> x = y = [3, 6]
    # tau = 0: k = 3 > b -> s = 1/(1 * (3 - 2) + 1) = 1/2 -> x = ([1, 2] + [3, 6]) / 2 = [2, 4]
    spec = AsyncServerSpec(kind="fedasync", alpha=1.0, staleness="hinge", stale_a=1.0, stale_b=2.0)
    st = arrivals(server([1.0, 2.0], spec, version=3), spec, [[3.0, 6.0]], [tau])
    np.testing.assert_allclose(w(st), want, rtol=1e-6)


def test_fedasync_batch_applied_in_order_with_version_increments():
    # alpha = 0.5, poly a = 1, version 0, x = [0, 0]; two uploads both downloaded at tau = 0:
    # 1st: k = 0 - 0 = 0, s = 1, alpha_t = 0.5: x = 0.5 [0, 0] + 0.5 [4, 8] = [2, 4]; version 1
    # 2nd: k = 1 - 0 = 1, s = 1/2, alpha_t = 0.25: x = 0.75 [2, 4] + 0.25 [6, 0] = [3, 3]
    # (in the other order: [3, 0], then 0.75 [3, 0] + 0.25 [4, 8] = [3.25, 2])
    spec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="poly", stale_a=1.0)
    st = arrivals(server([0.0, 0.0], spec), spec, [[4.0, 8.0], [6.0, 0.0]], [0, 0])
    np.testing.assert_allclose(w(st), [3.0, 3.0], rtol=1e-6)
    assert int(st.version) == 2 and int(st.applied) == 2
    np.testing.assert_array_equal(st.hist[:3], [1, 1, 0])  # k = 0 and k = 1


def test_fedasync_upload_that_did_not_reach_is_ignored():
    # ok = [False, True]: only [6, 0] is applied, at k = 0 (the version did not move):
    # x = 0.5 [0, 0] + 0.5 [6, 0] = [3, 0]
    spec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="poly", stale_a=1.0)
    st = arrivals(server([0.0, 0.0], spec), spec, [[4.0, 8.0], [6.0, 0.0]], [0, 0], ok=[0, 1])
    np.testing.assert_allclose(w(st), [3.0, 0.0], rtol=1e-6)
    assert int(st.version) == 1 and int(st.applied) == 1 and int(st.stale_dropped) == 0


def test_max_staleness_drops():
    # max_staleness = 2, version 5: tau = 2 -> k = 3 > 2 dropped (params, version, hist kept,
    # stale_dropped 1); tau = 3 -> k = 2 accepted (boundary), constant s, alpha = 0.5:
    # x = 0.5 [1, 2] + 0.5 [3, 4] = [2, 3], version 6
    spec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="constant", max_staleness=2)
    st0 = server([1.0, 2.0], spec, version=5)
    st = arrivals(st0, spec, [[9.0, 9.0]], [2])
    np.testing.assert_array_equal(w(st), [1.0, 2.0])
    assert int(st.version) == 5 and int(st.stale_dropped) == 1 and int(st.applied) == 0
    assert int(st.hist.sum()) == 0
    st = arrivals(st, spec, [[3.0, 4.0]], [3])
    np.testing.assert_array_equal(w(st), [2.0, 3.0])
    # the per-upload accept flags: [dropped, accepted, not reached] -> [False, True, False]
    _, taken = apply_arrivals(
        st0,
        {"w": jnp.ones((3, 2))},
        {"w": jnp.ones((3, 2))},
        jnp.asarray([2, 3, 3], jnp.int32),
        jnp.asarray([True, True, False]),
        spec,
        return_taken=True,
    )
    np.testing.assert_array_equal(taken, [False, True, False])
    assert int(st.version) == 6 and int(st.stale_dropped) == 1 and int(st.applied) == 1


# --- FedBuff (§2.2) -------------------------------------------------------------------------


def test_fedbuff_flush():
    # K = 2, eta_g = 0.5, s(k) = 1/sqrt(1 + k) (poly a = 0.5); server w = [1, 2] at version 3.
    # upload 1: start [1, 2] (tau 3, k 0, s 1), y [0, 0]: delta [1, 2]; buffer [1, 2]; 1 < K:
    #   no flush, w and version unchanged.
    # upload 2: start [2, 2] (tau 0, k = 3 - 0 = 3, s = 1/2), y [0, 4]: delta [2, -2] * 1/2 =
    #   [1, -1]; buffer [2, 1]; flush: w = [1, 2] - 0.5 * [2, 1] / 2 = [0.5, 1.75]; version 4;
    #   buffer 0.
    spec = AsyncServerSpec(kind="fedbuff", staleness="poly", stale_a=0.5, buffer_k=2, server_lr=0.5)
    st = server([1.0, 2.0], spec, version=3)
    st = arrivals(st, spec, [[0.0, 0.0]], [3], starts=[[1.0, 2.0]])
    np.testing.assert_array_equal(w(st), [1.0, 2.0])
    np.testing.assert_array_equal(st.buffer["w"], [1.0, 2.0])
    assert int(st.version) == 3 and int(st.buffered) == 1 and int(st.applied) == 1
    st = arrivals(st, spec, [[0.0, 4.0]], [0], starts=[[2.0, 2.0]])
    np.testing.assert_allclose(w(st), [0.5, 1.75], rtol=1e-6)
    np.testing.assert_array_equal(st.buffer["w"], [0.0, 0.0])
    assert int(st.version) == 4 and int(st.buffered) == 0 and int(st.applied) == 2
    # upload 3 (fewer than K again): start [0.5, 1.75] tau 4, y [0, 0]: buffered, w unchanged
    st = arrivals(st, spec, [[0.0, 0.0]], [4], starts=[[0.5, 1.75]])
    np.testing.assert_allclose(w(st), [0.5, 1.75], rtol=1e-6)
    assert int(st.version) == 4 and int(st.buffered) == 1


def test_fedbuff_flush_in_one_batch():
    # the same two uploads in one batch give the same flush: w = [0.5, 1.75], version 4
    spec = AsyncServerSpec(kind="fedbuff", staleness="poly", stale_a=0.5, buffer_k=2, server_lr=0.5)
    st = arrivals(
        server([1.0, 2.0], spec, version=3),
        spec,
        [[0.0, 0.0], [0.0, 4.0]],
        [3, 0],
        starts=[[1.0, 2.0], [2.0, 2.0]],
    )
    np.testing.assert_allclose(w(st), [0.5, 1.75], rtol=1e-6)
    assert int(st.version) == 4 and int(st.buffered) == 0


# --- staleness histogram and mean -----------------------------------------------------------


def test_staleness_histogram_and_exact_mean():
    # hist_bins = 4, constant s, version 7, four uploads at tau = 7, 6, 4, 0 with versions
    # incrementing after each: k = 7-7 = 0, 8-6 = 2, 9-4 = 5, 10-0 = 10.
    # bins: k = 0 -> 0, k = 2 -> 2, k = 5 and 10 -> last bin 3 (collects k >= 3): [1, 0, 1, 2].
    # mean staleness = (0 + 2 + 5 + 10) / 4 = 17 / 4 = 4.25 (from the clipped bins it would be
    # (0 + 2 + 3 + 3) / 4 = 2, the old `staleness_mean`).
    spec = AsyncServerSpec(kind="fedasync", alpha=0.5, staleness="constant", hist_bins=4)
    st = arrivals(server([0.0, 0.0], spec, version=7), spec, [[1.0, 1.0]] * 4, [7, 6, 4, 0])
    np.testing.assert_array_equal(st.hist, [1, 0, 1, 2])
    assert float(staleness_mean(st)) == 4.25
    assert float(staleness_mean(server([0.0, 0.0], spec))) == 0.0  # no uploads: 0


def test_staleness_mean_ignores_dropped_and_fedbuff_counts_every_upload():
    # FedBuff K = 3 (no flush, the version stays 2), max_staleness 1: tau = 2 (k 0), tau = 1
    # (k 1), tau = 0 (k 2, dropped). hist [1, 1, 0, 0], mean (0 + 1) / 2 = 0.5
    spec = AsyncServerSpec(kind="fedbuff", buffer_k=3, max_staleness=1, hist_bins=4)
    st = arrivals(server([0.0, 0.0], spec, version=2), spec, [[1.0, 1.0]] * 3, [2, 1, 0])
    np.testing.assert_array_equal(st.hist, [1, 1, 0, 0])
    assert float(staleness_mean(st)) == 0.5 and int(st.stale_dropped) == 1


@pytest.mark.parametrize("kind", ["fedasync", "fedbuff"])
def test_dropped_or_unreached_diverged_upload_changes_nothing(kind):
    # a diverged model [nan, inf] that is dropped for staleness (version 5, tau 0, k 5 > 2) or
    # did not reach the server (ok False) is multiplied by a zero weight; 0 * nan = nan, so it
    # must be excluded, not weighted by 0: params stay [1, 2], the buffer stays [0, 0].
    spec = AsyncServerSpec(kind=kind, alpha=0.5, max_staleness=2, buffer_k=1)
    bad = [[np.nan, np.inf], [np.nan, np.inf]]
    st = arrivals(server([1.0, 2.0], spec, version=5), spec, bad, [0, 5], ok=[1, 0])
    np.testing.assert_array_equal(w(st), [1.0, 2.0])
    np.testing.assert_array_equal(st.buffer["w"], [0.0, 0.0])
    assert int(st.stale_dropped) == 1 and int(st.applied) == 0 and int(st.version) == 5
