"""Gossip learning at scale: time per gossip period and peak memory for N nodes with the
logistic model (conf/task/synthetic_logreg.yaml: 64-feature Gaussian classes, M examples per
node, always online, t_comp 2 s), float32 or bfloat16 node-model storage.

    python scripts/bench_gossip_scale.py --nodes 100000 [--dtype bfloat16] \
        [--out results/bench_gossip_scale.json]

The world is `dl.build.build(cfg)` and the gossip runner `dl.algorithms.base.make_runner`, with
the config `python -m dl.run` would compose from `config_overrides` (in the JSON). The first
period includes the compilation; `chunk_compiles` counts the chunk's compiled programs at the
end (1: the timed periods did not recompile).
"""

import argparse
import json
import os
import resource
import time
from pathlib import Path

import jax
import numpy as np

from dl.algorithms.base import make_runner
from dl.analysis.launch import compose
from dl.build import build
from dl.train.mapping import resolve_strategy

PERIOD_S, QUANTUM_S = 10.0, 1.0
MS_PER_SAMPLE = 2000.0 / 30.0  # t_comp = 3 x batch 10 x 1 step x ms / 1000 = 2 s


def overrides(a) -> list[str]:
    n = a.nodes
    return [
        "task=synthetic_logreg",
        "algorithm=gossip",
        "trace=constant",
        "logger=disabled",
        "sim.progress=false",
        f"sim.num_nodes={n}",
        f"sim.node_dtype={a.dtype}",
        "sim.node_map=vmap",
        f"task.dataset_options.examples={n * a.examples}",
        "task.dataset_options.input_shape=[64]",
        "task.dataset_options.classes=10",
        "task.partition.scheme=iid",
        "task.train.batch_size=10",
        "task.train.local_steps=1",
        "task.train.lr=0.1",
        "task.train.optimizer=sgd",
        f"trace.profiles.ms_per_sample={MS_PER_SAMPLE!r}",
        "trace.profiles.up_kbps=10000.0",
        "trace.profiles.down_kbps=10000.0",
        f"algorithm.period_s={PERIOD_S}",
        f"algorithm.quantum_s={QUANTUM_S}",
        # capacity sized so every due training runs in its quantum (E = N / 10 per quantum)
        f"algorithm.max_trainings={max(1, n // 5)}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--examples", type=int, default=16)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--periods", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("results/bench_gossip_scale.json"))
    a = ap.parse_args()
    lines = overrides(a)
    cfg = compose(lines)
    built = build(cfg)
    strategy = resolve_strategy(cfg["sim"]["node_map"], cfg["task"]["model"])
    runner = make_runner(cfg, built, strategy)
    key = jax.random.key(cfg["seed"])  # the host loop's chunk key
    t0 = time.perf_counter()
    st = runner.chunk(runner.init, key, PERIOD_S)
    jax.block_until_ready(st.params)
    first = time.perf_counter() - t0
    times = []
    for p in range(2, a.periods + 2):
        t0 = time.perf_counter()
        st = runner.chunk(st, key, PERIOD_S * p)
        jax.block_until_ready(st.params)
        times.append(time.perf_counter() - t0)
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out = {
        "nodes": a.nodes,
        "dtype": a.dtype,
        "period_s": PERIOD_S,
        "quantum_s": QUANTUM_S,
        "first_period_incl_compile_s": first,
        "period_wall_s": times,
        "median_period_s": float(np.median(times)),
        "peak_rss_gib": rss_gib,
        "messages": float(st.counters["messages_sent"]),
        "trainings": float(st.counters["trainings"]),
        "node_model_bytes": int(sum(x.nbytes for x in jax.tree.leaves(st.params))),
        "chunk_compiles": runner.chunk._cache_size(),
        "t_comp_s": float(built.energy.t_comp[0]),
        "config_overrides": lines,
        "backend": jax.default_backend(),
        "loadavg": list(os.getloadavg()),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
