"""FedJAX 0.0.17's FedAvg round (`fedjax.algorithms.fed_avg`) on the peer workload: haiku
versions of our models, client SGD, `shuffle_repeat_batch` (reshuffled each round) for E steps
of batch B; the server step is FedAvg's own (server SGD, lr 1).

    bench/peers/.venvs/fedjax/bin/python bench/peers/fedjax_worker.py MODEL N ROUNDS DATA.npz
"""

import sys
import time
from pathlib import Path

import fedjax
import haiku as hk
import jax
import numpy as np
from fedjax.algorithms import fed_avg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLASSES, WORKLOADS, emit, load  # noqa: E402


def forward(model: str):
    def fn(batch):
        x = batch["x"]
        if model == "logreg":
            return hk.Linear(CLASSES)(x.reshape((x.shape[0], -1)))
        c1, c2, hidden = (16, 32, 128) if model == "cnn_small" else (32, 64, 2048)
        for c in (c1, c2):
            x = jax.nn.relu(hk.Conv2D(c, 5, padding="SAME")(x))
            x = hk.MaxPool(2, 2, "VALID")(x)
        x = jax.nn.relu(hk.Linear(hidden)(x.reshape((x.shape[0], -1))))
        return hk.Linear(CLASSES)(x)

    return fn


def main() -> None:
    model, n, rounds, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    w = WORKLOADS[model]
    px, py = load(Path(path))
    sample = {"x": px[0, :2], "y": py[0, :2]}
    net = fedjax.create_model_from_haiku(
        transformed_forward_pass=hk.transform(forward(model)),
        sample_batch=sample,
        train_loss=lambda b, p: fedjax.metrics.unreduced_cross_entropy_loss(b["y"], p),
    )
    grad_fn = fedjax.model_grad(net)
    algo = fed_avg.federated_averaging(
        grad_fn,
        fedjax.optimizers.sgd(w["lr"]),
        fedjax.optimizers.sgd(1.0),
        fedjax.ShuffleRepeatBatchHParams(
            batch_size=w["batch"], num_epochs=None, num_steps=w["steps"]
        ),
    )
    datasets = [fedjax.ClientDataset({"x": px[i], "y": py[i]}) for i in range(len(px))]
    clients_all = [
        (f"c{i}".encode(), datasets[i % len(px)], jax.random.PRNGKey(i)) for i in range(n)
    ]
    state = algo.init(net.init(jax.random.PRNGKey(0)))
    t0 = time.perf_counter()
    state, _ = algo.apply(state, clients_all[: min(n, 4)])  # compile
    jax.block_until_ready(state.params)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        state, _ = algo.apply(state, clients_all)
        jax.block_until_ready(state.params)
        times.append(time.perf_counter() - t0)
    assert np.isfinite(np.asarray(jax.tree_util.tree_leaves(state.params)[0])).all()
    emit({"warmup_s": warm, "round_s": times, "jax": jax.__version__})


if __name__ == "__main__":
    main()
