"""Gossip learning at scale: time per gossip period and peak memory for N nodes with the
logistic model (digits-shaped synthetic data, always online), float32 or bfloat16 storage.

    python scripts/bench_gossip_scale.py --nodes 100000 [--dtype bfloat16] \
        [--out results/bench_gossip_scale.json]
"""

import argparse
import json
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dl.engine.gossip_clock import GossipEnv, GossipSpec, init_gossip, make_gossip_chunk
from dl.models import init_params, make_model
from dl.traces.synthetic import always_on
from dl.train.local import LocalTrainSpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--examples", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--periods", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("results/bench_gossip_scale.json"))
    a = ap.parse_args()
    n = a.nodes
    rng = np.random.default_rng(0)
    model = make_model("logreg", (64,), 10)
    apply = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
    params = init_params(model, (64,), jax.random.key(0))
    f = lambda v: jnp.full((n,), v, jnp.float32)  # noqa: E731
    env = GossipEnv(
        x=jnp.asarray(rng.normal(size=(n, a.examples, 64)).astype(np.float32)),
        y=jnp.asarray(rng.integers(0, 10, (n, a.examples)).astype(np.int32)),
        counts=jnp.full((n,), a.examples, jnp.int32),
        t_comp=f(2.0),
        up_kbps=f(1e4),
        down_kbps=f(1e4),
        power_w=f(3.0),
        e_up_j=f(0.01),
        e_down_j=f(0.01),
        nodes=always_on(n),
    )
    # period 10 s, quantum 1 s; capacity sized so every due training runs in its quantum
    spec = GossipSpec(period_s=10.0, quantum_s=1.0, max_trainings=n // 5, node_dtype=a.dtype)
    train = LocalTrainSpec(batch_size=10, local_steps=1, lr=0.1)
    chunk = make_gossip_chunk(apply, train, spec, env, 650 * 4, "vmap")
    st = init_gossip(params, n, spec, jax.random.key(1))
    t0 = time.perf_counter()
    st = chunk(st, jax.random.key(2), jnp.float32(10.0))
    jax.block_until_ready(st.params)
    first = time.perf_counter() - t0
    times = []
    for p in range(2, a.periods + 2):
        t0 = time.perf_counter()
        st = chunk(st, jax.random.key(2), jnp.float32(10.0 * p))
        jax.block_until_ready(st.params)
        times.append(time.perf_counter() - t0)
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = {
        "nodes": n,
        "dtype": a.dtype,
        "period_s": 10.0,
        "quantum_s": 1.0,
        "first_period_incl_compile_s": first,
        "period_wall_s": times,
        "median_period_s": float(np.median(times)),
        "peak_rss_gib": rss_gib,
        "messages": float(st.counters["messages_sent"]),
        "trainings": float(st.counters["trainings"]),
        "node_model_bytes": int(sum(x.nbytes for x in jax.tree.leaves(st.params))),
        "backend": jax.default_backend(),
        "loadavg": list(__import__("os").getloadavg()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
