"""Synchronous FedAvg pinned by hand on 3-4 clients (ALGORITHMS.md §4.3, FedScale's
`tictak_client_tasks`; McMahan et al. 2017; Reddi et al. 2021 for the server optimizers).

The model makes local training hand-computable: logits `[x.w + 100, 0]` with label 1 give a
cross-entropy `log(1 + e^(x.w + 100))` whose gradient is `sigmoid(x.w + 100) x = x` exactly in
float32 (e^-100 is below f32 resolution next to 1). Every example of a client is the same row
x_i, so one SGD step at lr eta moves the client's model from w to `w - eta x_i`, whatever the
minibatch and w.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dl.algorithms.fedavg import FedAvgSpec, init_fedavg, make_fedavg_chunk
from dl.devices.energy_env import EnergyEnv, make_energy_env
from dl.devices.profiles import DeviceProfiles
from dl.engine.rounds import NodeEnv
from dl.rules.server_opt import ServerOptSpec
from dl.train.local import LocalTrainSpec

TRAIN = LocalTrainSpec(batch_size=1, local_steps=1, lr=0.5)  # one step at eta = 0.5
W0 = {"w": jnp.array([1.0, 2.0])}
MB = 1000  # model bytes


def apply_fn(params, x):  # x [B, 2] -> logits [B, 2]
    z = x @ params["w"] + 100.0
    return jnp.stack([z, jnp.zeros_like(z)], axis=-1)


# Four clients; client 3 is offline all the time, so the 3 = ceil(1.3 * 2) sampled clients of a
# K = 2 round are exactly clients 0, 1, 2 (no randomness left in who is sampled).
X = np.array([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0], [8.0, 8.0]], np.float32)  # each client's row
COUNTS = np.array([1, 3, 2, 2], np.int32)
# per-client session: t_down + t_comp + t_up = t_client
T_DOWN = np.array([1.0, 0.5, 1.0, 1.0], np.float32)
T_COMP = np.array([2.0, 1.0, 4.0, 1.0], np.float32)
T_UP = np.array([1.0, 0.5, 1.0, 1.0], np.float32)  # t_client = [4, 2, 6, 3]
POWER_W = np.array([2.0, 3.0, 1.0, 1.0], np.float32)
E_DOWN = np.array([0.5, 0.25, 1.0, 1.0], np.float32)
E_UP = np.array([1.0, 0.5, 2.0, 2.0], np.float32)
ONLINE = jnp.array([True, True, True, False])


def make_env(online_until=None):
    e = EnergyEnv(
        *(jnp.asarray(a) for a in (T_DOWN, T_COMP, T_UP, POWER_W, E_DOWN, E_UP)),
        e_burst_j=jnp.zeros((4,)),
    )
    x = jnp.asarray(np.repeat(X[:, None, :], 3, axis=1))  # [N=4, M=3, D=2]
    y = jnp.ones((4, 3), jnp.int32)
    until = online_until or (lambda t0, t1: ONLINE)
    return NodeEnv(x, y, jnp.asarray(COUNTS), e.t_client, lambda t: ONLINE, until, e)


def run(spec, env, rounds=1):
    chunk = make_fedavg_chunk(apply_fn, TRAIN, spec, env, model_bytes=MB, strategy="vmap")
    return chunk(init_fedavg(W0, spec), jax.random.key(0), jnp.float32(1e9), jnp.int32(rounds))


def test_round_lasts_until_the_kth_fastest_of_the_overcommitted_sample():
    # sampled 0, 1, 2 (t_client 4, 2, 6 s); K = 2 fastest are 1 (2 s) and 0 (4 s): the round
    # lasts until the K-th fastest finishes, 4 s (the fastest alone would be 2 s)
    st = run(FedAvgSpec(clients_per_round=2, overcommit=1.3), make_env())
    assert float(st.clock) == 4.0
    assert int(st.round) == 1 and int(st.clients) == 2
    # all 3 sampled clients download (3 x 1000 bytes), the 2 kept upload (2 x 1000)
    assert float(st.bytes_down) == 3 * MB and float(st.bytes_up) == 2 * MB


def test_aggregate_is_the_example_weighted_mean_of_the_kept_clients():
    # client 0: w - 0.5 x_0 = [1, 2] - 0.5 [1, 0] = [0.5, 2], 1 example
    # client 1: [1, 2] - 0.5 [0, 2] = [1, 1], 3 examples
    # weighted mean (McMahan et al.: n_k / n): (1 [0.5, 2] + 3 [1, 1]) / 4 = [0.875, 1.25]
    # (the plain mean would be [0.75, 1.5]); server SGD at lr 1 lands on the mean
    st = run(FedAvgSpec(clients_per_round=2, overcommit=1.3), make_env())
    np.testing.assert_allclose(st.params["w"], [0.875, 1.25], rtol=1e-6)


def test_energy_of_kept_clients_and_of_stragglers():
    # kept 0 and 1 train fully: 2 W x 2 s + 3 W x 1 s = 7 J; straggler 2 (sampled, not kept)
    # trains from t_down = 1 s to the end of the round at 4 s: 3 s x 1 W = 3 J, all wasted
    # radio: downloads of all 3 (0.5 + 0.25 + 1.0) + uploads of the kept (1.0 + 0.5) = 3.25 J
    # wasted: the straggler's compute 3 J + its download 1.0 J = 4.0 J
    st = run(FedAvgSpec(clients_per_round=2, overcommit=1.3), make_env())
    assert float(st.energy["energy_compute_j"]) == pytest.approx(10.0)
    assert float(st.energy["energy_radio_j"]) == pytest.approx(3.25)
    assert float(st.energy["energy_wasted_j"]) == pytest.approx(4.0)


def test_client_going_offline_before_finishing_is_dropped():
    # client 1 (the fastest) would go offline before its 2 s session ends: FedScale's oracle
    # drops it at sampling time, so K = 2 kept are 0 (4 s) and 2 (6 s), round = 6 s
    until = lambda t0, t1: jnp.array([True, False, True, False])  # noqa: E731
    st = run(FedAvgSpec(clients_per_round=2, overcommit=1.3), make_env(until))
    assert float(st.clock) == 6.0 and int(st.clients) == 2
    # client 0: [0.5, 2] (1 example); client 2: [1, 2] - 0.5 [4, 4] = [-1, 0] (2 examples)
    # -> (1 [0.5, 2] + 2 [-1, 0]) / 3 = [-0.5, 2 / 3]
    np.testing.assert_allclose(st.params["w"], [-0.5, 2.0 / 3.0], rtol=1e-6)
    # the dropped client downloads nothing and spends nothing (README: not counted);
    # bytes: 2 downloads, 2 uploads; energy: compute 2 x 2 + 1 x 4 = 8 J, radio
    # 0.5 + 1.0 + 1.0 + 2.0 = 4.5 J, nothing wasted (no straggler left)
    assert float(st.bytes_down) == 2 * MB and float(st.bytes_up) == 2 * MB
    assert float(st.energy["energy_compute_j"]) == pytest.approx(8.0)
    assert float(st.energy["energy_radio_j"]) == pytest.approx(4.5)
    assert float(st.energy["energy_wasted_j"]) == 0.0


def test_server_momentum_two_rounds():
    # every round keeps clients 0 and 1 and their updates do not depend on w, so the
    # pseudo-gradient is the same each round: g = w - mean = [1, 2] - [0.875, 1.25]
    # = [0.125, 0.75]. optax sgd with momentum beta = 0.5, lr 1: trace_1 = g, w_1 = w_0 - g
    # = [0.875, 1.25]; trace_2 = g + 0.5 g = 1.5 g, w_2 = w_1 - 1.5 g = [0.6875, 0.125]
    # (without momentum: w_2 = w_1 - g = [0.75, 0.5])
    opt = ServerOptSpec(name="momentum", lr=1.0, momentum=0.5)
    st = run(FedAvgSpec(clients_per_round=2, overcommit=1.3, server_opt=opt), make_env(), 2)
    assert int(st.round) == 2 and float(st.clock) == 8.0
    np.testing.assert_allclose(st.params["w"], [0.6875, 0.125], rtol=1e-6)


def test_server_adam_one_step():
    # optax adam, step 1, with bias correction: m = (1 - b1) g, v = (1 - b2) g^2,
    # m_hat = m / (1 - b1) = g, v_hat = v / (1 - b2) = g^2, update = -lr m_hat / (sqrt(v_hat) + eps)
    # = -lr g / (|g| + eps). g = [0.125, 0.75], eps = 0.25, lr = 1:
    # [0.125 / 0.375, 0.75 / 1.0] = [1/3, 0.75] -> w_1 = [1 - 1/3, 2 - 0.75] = [2/3, 1.25]
    # (no bias correction: 0.1 g / (0.1 |g| + eps) = [0.0125 / 0.2625, 0.075 / 0.325])
    opt = ServerOptSpec(name="adam", lr=1.0, b1=0.9, b2=0.99, eps=0.25)
    st = run(FedAvgSpec(clients_per_round=2, overcommit=1.3, server_opt=opt), make_env())
    np.testing.assert_allclose(st.params["w"], [2.0 / 3.0, 1.25], rtol=1e-5)


# Upload compression, timed and costed from a device profile: one client, a B = 125,000-byte
# model (1e6 bits), WiFi, up 1 Mbps (976.5625 FedScale kbit/s), down 4 Mbps, 500 ms/sample.
ONE_MBPS = 976.5625
PROFILE = DeviceProfiles(
    ms_per_sample=jnp.array([500.0]),
    up_kbps=jnp.array([ONE_MBPS]),
    down_kbps=jnp.array([4 * ONE_MBPS]),
    power_w=jnp.array([2.0]),
    device_id=jnp.array([-1]),
)


def test_compressed_upload_is_faster_and_cheaper():
    b = 125_000
    e = make_energy_env(PROFILE, b, 1, 1, {"radio": "wifi"})
    one = lambda *a: jnp.array([True])  # noqa: E731
    x, y = jnp.ones((1, 1, 2)), jnp.ones((1, 1), jnp.int32)
    env = NodeEnv(x, y, jnp.array([1]), e.t_client, one, one, e)
    spec = FedAvgSpec(clients_per_round=1, overcommit=1.0, upload_frac=0.25)
    chunk = make_fedavg_chunk(apply_fn, TRAIN, spec, env, model_bytes=b, strategy="vmap")
    st = chunk(init_fedavg(W0, spec), jax.random.key(0), jnp.float32(1e9), jnp.int32(1))
    # t_up = s * B * 8 / 1024 / kbps = 0.25 * 1e6 / 1024 / 976.5625 = 0.25 s (full model: 1 s)
    # t_down = 1e6 / 1024 / 3906.25 = 0.25 s; t_comp = 3 * 1 * 1 * 500 / 1000 = 1.5 s
    # round = t_client = 0.25 + 1.5 + 0.25 = 2.0 s (2.75 s if the upload were not compressed)
    assert float(st.clock) == pytest.approx(2.0, rel=1e-6)
    # bytes: up s * B = 31,250, down B = 125,000
    assert float(st.bytes_up) == 31_250 and float(st.bytes_down) == 125_000
    # radio: up (283.17 * 1 + 132.86) mW * 0.25 s = 104.0075 mJ (416.03 mJ uncompressed)
    #        down (137.01 * 4 + 132.86) mW * 0.25 s = 170.225 mJ      -> 274.2325 mJ
    assert float(st.energy["energy_radio_j"]) == pytest.approx(0.2742325, rel=1e-5)
    assert float(st.energy["energy_compute_j"]) == pytest.approx(2.0 * 1.5, rel=1e-6)
