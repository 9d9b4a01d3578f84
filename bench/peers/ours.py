"""Our engine's whole synchronous FedAvg round (`dl.algorithms.base.make_runner`,
algorithm=fedavg) on the peer workload: N clients per round, all always online, every round
one `runner.chunk` call.

    .venv/bin/python bench/peers/ours.py MODEL N ROUNDS DATA.npz
Prints {"round_s": [...], "warmup_s": first round incl. compile}.
"""

import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WORKLOADS, emit, load  # noqa: E402

from dl.algorithms.base import make_runner  # noqa: E402
from dl.build import build  # noqa: E402
from dl.engine.rounds import NodeEnv  # noqa: E402
from dl.resume_config import compose_resolved  # noqa: E402
from dl.train.mapping import resolve_strategy  # noqa: E402


def main() -> None:
    model, n, rounds, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    w = WORKLOADS[model]
    task = (
        ["task=digits_logreg"] if model == "logreg" else ["task=fmnist_cnn", f"task.model={model}"]
    )
    cfg = compose_resolved(
        ["logger=disabled", "sim.progress=false", "trace=constant", "algorithm=fedavg", *task]
        + ["sim.num_nodes=10", "algorithm.clients_per_round=10", "algorithm.overcommit=1.0"]
        + [f"task.train.local_steps={w['steps']}", f"task.train.batch_size={w['batch']}"]
        + [f"task.train.lr={w['lr']}", "task.train.optimizer=sgd"]
    )
    b = build(cfg)  # model, params and training spec; the nodes are replaced below
    px, py = load(Path(path))
    idx = np.arange(n) % len(px)
    x = jnp.asarray(px[idx])
    if model == "logreg" and b.env.x.shape[2:] != x.shape[2:]:  # digits is 8x8 = 64 features
        x = x.reshape((n, x.shape[1], *b.env.x.shape[2:]))
    ones = jnp.ones((n,), bool)
    env = NodeEnv(
        x=x,
        y=jnp.asarray(py[idx].astype(np.int32)),
        counts=jnp.full((n,), px.shape[1], jnp.int32),
        t_client=jnp.ones((n,), jnp.float32),
        online=lambda t: ones,
        online_until=lambda t0, t1: ones,
    )
    cfg["sim"]["num_nodes"] = n
    cfg["algorithm"]["clients_per_round"] = n
    strategy = resolve_strategy("auto", model)
    runner = make_runner(cfg, dataclasses.replace(b, env=env), strategy)
    st, key = runner.init, jax.random.key(0)
    times = []
    for _ in range(rounds + 1):
        t0 = time.perf_counter()
        st = runner.chunk(st, key, runner.clock(st) + 0.5)  # one round (t_client = 1 s)
        jax.block_until_ready(st)
        times.append(time.perf_counter() - t0)
    assert runner.gauges(st)["round"] == rounds + 1, runner.gauges(st)
    assert runner.gauges(st)["clients_last_round"] == n
    emit({"warmup_s": times[0], "round_s": times[1:], "strategy": strategy})


if __name__ == "__main__":
    main()
