"""Benchmark: one gossip period over N nodes vs. one vectorized local-training step (issue 4).

    python scripts/bench_gossip.py [--nodes 10000] [--period 10] [--quantum 1] [--repeats 5] \
        [--caps 64 1500 10000] [--out results/bench_gossip.json]

Workload: the logistic model on digits-shaped synthetic data (x ~ N(0, 1) of shape (64,), labels
uniform over 10 classes, M examples per node, every node full), local training = 1 SGD step of
batch 10 (the same `LocalTrainSpec` for both sides), always-on availability
(`dl.traces.synthetic.always_on`), identical devices (20 ms/sample -> t_comp = 0.6 s, 10 Mbit/s).

- Gossip: `dl.engine.gossip_clock.make_gossip_chunk` (age merge, uniform peer sampling, s = 1).
  The chunk is run for a few periods first (compile + steady state: every node has sent and
  received), then each timing advances the clock by exactly one period (period / quantum quanta)
  and blocks. In one period every node sends once and on average receives (and trains) once, so
  about N trainings finish per period, N * quantum / period per quantum. The engine trains a
  fixed-capacity batch of `max_trainings` nodes per quantum (its cost does not depend on how many
  are really due), so the benchmark reports several capacities: the default 64 (trainings are
  the bottleneck: most are deferred, reported), capacities with headroom above the expected
  E = N * quantum / period (E + 4 sqrt(E) and 1.5 E), and N. A system-only variant
  (`train=False`: same clock, sends, merges' bookkeeping, no model math) splits the cost.
- Baseline: `dl.train.local.make_batch_train` over all N nodes, 1 local step, jitted, strategy
  from `resolve_strategy('auto', 'logreg')`.
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

from dl.engine.gossip_clock import GossipEnv, GossipSpec, init_gossip, make_gossip_chunk
from dl.models import init_params, make_model, model_bytes
from dl.rules.gossip_merge import MergeSpec
from dl.traces.synthetic import always_on
from dl.train.local import LocalTrainSpec, make_batch_train, node_keys
from dl.train.mapping import resolve_strategy

SHAPE, CLASSES = (64,), 10
MS_PER_SAMPLE, KBPS, POWER_W = 20.0, 10_000.0, 3.0
TARGET_RATIO = 3.0


def timed(fn, repeats_inner: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats_inner):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / repeats_inner


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

    model = make_model("logreg", SHAPE, CLASSES)
    apply = lambda p, xb: model.apply({"params": p}, xb)  # noqa: E731
    key = jax.random.key(0)
    kp, kx, ky, kk, kg = jax.random.split(key, 5)
    params = init_params(model, SHAPE, kp)
    mbytes = model_bytes(params)
    x = jax.random.normal(kx, (n, m) + SHAPE, jnp.float32)
    y = jax.random.randint(ky, (n, m), 0, CLASSES, jnp.int32)
    counts = jnp.full((n,), m, jnp.int32)
    train = LocalTrainSpec(batch_size=args.batch, local_steps=1, lr=0.1, optimizer="sgd")
    strategy = resolve_strategy("auto", "logreg")
    t_comp = 3.0 * args.batch * 1 * MS_PER_SAMPLE / 1000.0
    f = lambda v: jnp.full((n,), v, jnp.float32)  # noqa: E731
    bits = mbytes * 8.0
    env = GossipEnv(
        x=x,
        y=y,
        counts=counts,
        t_comp=f(t_comp),
        up_kbps=f(KBPS),
        down_kbps=f(KBPS),
        power_w=f(POWER_W),
        e_up_j=f(0.0),
        e_down_j=f(0.0),
        nodes=always_on(n),
    )
    del bits

    # --- baseline: one vectorized local-training step of all N nodes
    batch_train = jax.jit(make_batch_train(apply, train, strategy))
    stack = jax.tree.map(lambda p: jnp.broadcast_to(p, (n,) + p.shape), params)
    active = jnp.ones((n,), bool)
    keys = node_keys(kk, jnp.zeros((), jnp.int32), jnp.arange(n))
    t0 = time.perf_counter()
    jax.block_until_ready(batch_train(stack, x, y, counts, active, keys))
    base_compile = time.perf_counter() - t0
    one = timed(lambda: batch_train(stack, x, y, counts, active, keys))
    inner = max(1, math.ceil(0.25 / max(one, 1e-6)))

    cases = {}
    for cap in caps:
        for do_train in (True, False):
            name = f"cap{cap}" + ("" if do_train else "_system_only")
            spec = GossipSpec(
                period_s=args.period,
                quantum_s=args.quantum,
                max_trainings=cap,
                merge=MergeSpec("age"),
                sample_frac=1.0,
                topology="uniform",
                train=do_train,
            )
            chunk = make_gossip_chunk(apply, train, spec, env, mbytes, strategy)
            st = init_gossip(params, n, spec, kg)
            t0 = time.perf_counter()
            st = jax.block_until_ready(chunk(st, key, jnp.float32(args.quantum)))
            compile_s = time.perf_counter() - t0
            t_now = args.warm_periods * args.period
            st = jax.block_until_ready(chunk(st, key, jnp.float32(t_now)))
            cases[name] = {
                "chunk": chunk,
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
        base_times.append(timed(lambda: batch_train(stack, x, y, counts, active, keys), inner))
        for c in cases.values():
            before = {k: float(v) for k, v in c["state"].counters.items()}
            t_next = c["t"] + args.period
            t0 = time.perf_counter()
            st = jax.block_until_ready(c["chunk"](c["state"], key, jnp.float32(t_next)))
            c["times"].append(time.perf_counter() - t0)
            after = {k: float(v) for k, v in st.counters.items()}
            c["counters"].append({k: after[k] - before[k] for k in after})
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
        "model": "logreg",
        "input_shape": list(SHAPE),
        "classes": CLASSES,
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
