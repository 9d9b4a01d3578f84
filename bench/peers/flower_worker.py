"""Flower 1.42's FedAvg round in its Ray simulation engine (`flwr.simulation.start_simulation`,
the legacy entry point, deprecated but still shipped) on the logistic workload: NumPy clients
(softmax regression, E SGD steps of batch B after a per-round permutation), all N clients fit
every round (fraction_fit = 1, no evaluation). A round's time runs from the strategy's
configure_fit to the end of its aggregate_fit (Ray start-up and the first round not counted).

    bench/peers/.venvs/flower/bin/python bench/peers/flower_worker.py logreg N ROUNDS DATA.npz
"""

import os
import sys
import time
from pathlib import Path

import flwr as fl
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CLASSES, WORKLOADS, emit, load  # noqa: E402


def sgd_epoch(w, b, x, y, lr, batch, rng):
    """One local epoch of softmax-regression SGD (E = M / batch steps)."""
    perm = rng.permutation(len(x))
    for i in range(0, len(x), batch):
        xb, yb = x[perm[i : i + batch]], y[perm[i : i + batch]]
        z = xb @ w + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1.0
        p /= len(yb)
        w -= lr * xb.T @ p
        b -= lr * p.sum(0)
    return w, b


class Timed(fl.server.strategy.FedAvg):
    """FedAvg that records each round's wall time."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.start, self.rounds = {}, {}

    def configure_fit(self, server_round, parameters, client_manager):
        self.start[server_round] = time.perf_counter()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        out = super().aggregate_fit(server_round, results, failures)
        self.rounds[server_round] = (time.perf_counter() - self.start[server_round], len(results))
        return out


def main() -> None:
    model, n, rounds, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if model != "logreg":
        raise SystemExit("flower worker: only the logistic workload (NumPy clients)")
    w = WORKLOADS[model]
    px, py = load(Path(path))
    dim = px.shape[-1]

    class Client(fl.client.NumPyClient):
        def __init__(self, cid: int):
            self.cid = cid

        def fit(self, parameters, config):
            wt, bt = (p.copy() for p in parameters)
            rng = np.random.default_rng([self.cid, int(config.get("round", 0))])
            i = self.cid % len(px)
            wt, bt = sgd_epoch(wt, bt, px[i], py[i], w["lr"], w["batch"], rng)
            return [wt, bt], len(px[i]), {}

    def client_fn(context):
        return Client(int(context.node_config["partition-id"])).to_client()

    init = [np.zeros((dim, CLASSES), np.float32), np.zeros((CLASSES,), np.float32)]
    strategy = Timed(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=n,
        min_available_clients=n,
        min_evaluate_clients=0,
        initial_parameters=fl.common.ndarrays_to_parameters(init),
        on_fit_config_fn=lambda r: {"round": r},
    )
    cpus = os.cpu_count() or 2
    fl.simulation.start_simulation(
        client_fn=client_fn,
        num_clients=n,
        config=fl.server.ServerConfig(num_rounds=rounds + 1),
        strategy=strategy,
        client_resources={"num_cpus": 1},
        ray_init_args={"num_cpus": cpus, "include_dashboard": False, "log_to_driver": False},
    )
    got = [strategy.rounds[r] for r in sorted(strategy.rounds)]
    assert all(k == n for _, k in got), got
    emit(
        {
            "warmup_s": got[0][0],
            "round_s": [t for t, _ in got[1:]],
            "flwr": fl.__version__,
            "ray_cpus": cpus,
        }
    )


if __name__ == "__main__":
    main()
