"""Benchmark: one gossip period over N nodes vs. one vectorized local-training step (issue 4).

    python scripts/bench_gossip.py [--nodes 10000] [--period 10] [--quantum 1] [--repeats 5] \
        [--caps 64 1500 10000] [--out results/bench_gossip.json]

Workload: conf/task/synthetic_logreg.yaml (the logistic model on 64-feature Gaussian classes,
`dl/data/synthetic.py`, 10 classes, iid: M examples on every node), local training = 1 SGD
step of batch 10, always-on availability, identical devices (trace=constant: 20 ms/sample ->
t_comp = 0.6 s, 10 Mbit/s). The world comes from `dl.build.build(cfg)` and every case's gossip
runner from `dl.algorithms.base.make_runner(cfg, built, strategy)` (algorithm=gossip: age
merge, uniform peer sampling, s = 1), configs composed as `python -m dl.run` composes them
(`dl.analysis.launch.compose`; `config_overrides` in the JSON).

- Gossip: the runner's chunk is run for a few periods first (compile + steady state: every node
  has sent and received), then each timing advances the clock by exactly one period
  (period / quantum quanta) and blocks. In one period every node sends once and on average
  receives (and trains) once, so about N trainings finish per period, N * quantum / period per
  quantum. The engine trains a fixed-capacity batch of `max_trainings` nodes per quantum (its
  cost does not depend on how many are really due), so the benchmark reports several
  capacities: the default 64 (trainings are the bottleneck: most are deferred, reported),
  capacities with headroom above the expected E = N * quantum / period (E + 4 sqrt(E) and
  1.5 E), and N. A system-only variant (sim.train=false: same clock, sends, merges'
  bookkeeping, no model math) splits the cost. `chunk_compiles` counts the chunk's compiled
  programs at the end (1: no recompilation while timing).
- Baseline: `dl.train.local.make_batch_train` over all N nodes of the built world, 1 local
  step, jitted, strategy `resolve_strategy(sim.node_map, model)` (auto), as the host uses.
Timings are medians over `--repeats` (interleaved gossip / baseline so shared-CPU load hits both
alike); compile times are reported apart. The ratio = gossip period / training step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dl.algorithms.base import make_runner
from dl.analysis.launch import compose
from dl.build import build
from dl.train.local import make_batch_train, node_keys
from dl.train.mapping import resolve_strategy

MS_PER_SAMPLE, KBPS, POWER_W = 20.0, 10_000.0, 3.0
TARGET_RATIO = 3.0


def timed(fn, repeats_inner: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats_inner):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats_inner


def overrides(args) -> list[str]:
    """The `python -m dl.run` overrides of the benchmarked world (every case shares it)."""
    n, m = args.nodes, args.examples
    return [
        "task=synthetic_logreg",
        "algorithm=gossip",
        "trace=constant",
        "logger=disabled",
        "sim.progress=false",
        f"sim.num_nodes={n}",
        f"task.dataset_options.examples={n * m}",
        "task.dataset_options.input_shape=[64]",
        "task.dataset_options.classes=10",
        "task.partition.scheme=iid",
        f"task.train.batch_size={args.batch}",
        "task.train.local_steps=1",
        "task.train.lr=0.1",
        "task.train.optimizer=sgd",
        f"trace.profiles.ms_per_sample={MS_PER_SAMPLE}",
        f"trace.profiles.up_kbps={KBPS}",
        f"trace.profiles.down_kbps={KBPS}",
        f"trace.profiles.power_w={POWER_W}",
        f"algorithm.period_s={args.period}",
        f"algorithm.quantum_s={args.quantum}",
        "algorithm.merge=age",
        "algorithm.sample_frac=1.0",
        "algorithm.topology=uniform",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--examples", type=int, default=16, help="M examples per node")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--quantum", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warm-periods", type=int, default=3)
    ap.add_argument(
        "--caps",
        type=int,
        nargs="+",
        default=None,
        help="max_trainings values (default: 64, E + 4 sqrt(E), 1.5 E, N; E = N q / period)",
    )
    ap.add_argument("--out", type=Path, default=Path("results/bench_gossip.json"))
    args = ap.parse_args()
    n, m = args.nodes, args.examples
    per_quantum = n * args.quantum / args.period
    # E = expected trainings per quantum; E + 4 sqrt(E) is a Poisson-tail headroom (deferrals, if
    # any, are reported), 1.5 E a generous one
    tight = int(math.ceil(per_quantum + 4.0 * math.sqrt(per_quantum)))
    caps = args.caps or [64, tight, int(math.ceil(1.5 * per_quantum)), n]

    base_overrides = overrides(args)
    cfg = compose(base_overrides)
    built = build(cfg)  # data, model, devices, availability: shared by every case
    env, mbytes = built.env, built.model_bytes
    strategy = resolve_strategy(cfg["sim"]["node_map"], cfg["task"]["model"])
    t_comp = float(built.energy.t_comp[0])
    key = jax.random.key(cfg["seed"])  # the host loop's chunk key

    # --- baseline: one vectorized local-training step of all N nodes
    batch_train = jax.jit(make_batch_train(built.apply, built.train, strategy))
    stack = jax.tree.map(lambda p: jnp.broadcast_to(p, (n,) + p.shape), built.params)
    active = jnp.ones((n,), bool)
    keys = node_keys(key, jnp.zeros((), jnp.int32), jnp.arange(n))
    step = lambda: batch_train(stack, env.x, env.y, env.counts, active, keys)  # noqa: E731
    t0 = time.perf_counter()
    jax.block_until_ready(step())
    base_compile = time.perf_counter() - t0
    one = timed(step)
    inner = max(1, math.ceil(0.25 / max(one, 1e-6)))

    cases = {}
    for cap in caps:
        for do_train in (True, False):
            name = f"cap{cap}" + ("" if do_train else "_system_only")
            case = [f"algorithm.max_trainings={cap}", f"sim.train={str(do_train).lower()}"]
            runner = make_runner(compose(base_overrides + case), built, strategy)
            t0 = time.perf_counter()
            st = jax.block_until_ready(runner.chunk(runner.init, key, args.quantum))
            compile_s = time.perf_counter() - t0
            t_now = args.warm_periods * args.period
            st = jax.block_until_ready(runner.chunk(st, key, t_now))
            st, _ = runner.drain(st)
            cases[name] = {
                "runner": runner,
                "state": st,
                "t": t_now,
                "cap": cap,
                "train": do_train,
                "compile_s": compile_s,
                "times": [],
                "counters": [],
            }

    base_times = []
    for _ in range(args.repeats):
        base_times.append(timed(step, inner))
        for c in cases.values():
            t_next = c["t"] + args.period
            t0 = time.perf_counter()
            st = jax.block_until_ready(c["runner"].chunk(c["state"], key, t_next))
            c["times"].append(time.perf_counter() - t0)
            st, counts = c["runner"].drain(st)  # counters of this period, zeroed
            c["counters"].append(counts)
            c["state"], c["t"] = st, t_next

    base = statistics.median(base_times)
    rows = []
    for name, c in cases.items():
        med = statistics.median(c["times"])
        cnt = {k: float(np.mean([d[k] for d in c["counters"]])) for k in c["counters"][0]}
        rows.append(
            {
                "case": name,
                "max_trainings": c["cap"],
                "train": c["train"],
                "quanta_per_period": int(round(args.period / args.quantum)),
                "compile_s": c["compile_s"],
                "period_median_s": med,
                "period_times_s": c["times"],
                "ratio_vs_train_step": med / base,
                "per_period": {
                    k: cnt[k]
                    for k in ("messages_sent", "messages_lost", "trainings", "trainings_deferred")
                },
                "trainings_bottleneck": cnt["trainings_deferred"] > 0,
                "chunk_compiles": c["runner"].chunk._cache_size(),
            }
        )
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    out = {
        "command": "python scripts/bench_gossip.py " + " ".join(sys.argv[1:]),
        "machine": {
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "loadavg_end": list(load) if load else None,
        },
        "nodes": n,
        "examples_per_node": m,
        "batch_size": args.batch,
        "local_steps": 1,
        "model": cfg["task"]["model"],
        "dataset": built.dataset.name,
        "input_shape": list(built.dataset.input_shape),
        "classes": built.dataset.num_classes,
        "config_overrides": base_overrides,
        "model_bytes": mbytes,
        "strategy": strategy,
        "period_s": args.period,
        "quantum_s": args.quantum,
        "t_comp_s": t_comp,
        "expected_trainings_per_quantum": per_quantum,
        "train_step": {
            "compile_s": base_compile,
            "median_s": base,
            "times_s": base_times,
            "inner_calls_per_timing": inner,
        },
        "rows": rows,
        "target_ratio": TARGET_RATIO,
    }
    ok = [r for r in rows if r["train"] and not r["trainings_bottleneck"]]
    best = min(ok, key=lambda r: r["ratio_vs_train_step"]) if ok else None
    out["best_unbottlenecked"] = best and {
        "case": best["case"],
        "ratio": best["ratio_vs_train_step"],
        "meets_target": best["ratio_vs_train_step"] <= TARGET_RATIO,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"train step over {n} nodes (1 step, {strategy}): {base * 1e3:.1f} ms")
    print("| case | period (ms) | ratio | trainings/period | deferred/period |")
    print("|---|---|---|---|---|")
    for r in rows:
        p = r["per_period"]
        print(
            f"| {r['case']} | {r['period_median_s'] * 1e3:.1f} | "
            f"{r['ratio_vs_train_step']:.2f} | {p['trainings']:.0f} | "
            f"{p['trainings_deferred']:.0f} |"
        )


if __name__ == "__main__":
    main()
