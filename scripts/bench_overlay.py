"""Benchmark: a system-only task overlay of 100,000 nodes x 100 tasks for one simulated day.

Every Δ = 60 s of virtual time each online node does one push rumor-mongering round (feedback,
counter k = 3; Demers et al., PODC 1987) and one push-pull anti-entropy round (Karp et al.,
FOCS 2000) with a uniform random online partner (ALGORITHMS.md §6.1 recommendation). Tasks are
published at random times in the first half of the day by random nodes. Availability is an
inline diurnal Bernoulli model: node i is online in a round with probability
0.2 + 0.15 cos(2π (t / day - φ_i)), φ_i uniform in [0, 0.25) (a few time zones), drawn afresh
every round. An hour of rounds is one jitted `lax.scan`; the Python loop runs over hours.

The state is carried bit-packed (`dis.pack`: `dis.PackedKnowledge`, the same results as the
`[N, T]` boolean `Knowledge`), and threefry is lowered unrolled on CPU (the same random bits;
`--rolled-threefry` keeps JAX's default CPU lowering).

Usage: python scripts/bench_overlay.py [--nodes 100000 --tasks 100 --hours 24 --repeats 3]
Writes results/bench_overlay.json and prints a table.
"""

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from dl.overlay import dissemination as dis
from dl.overlay import review as rv
from dl.overlay.counting import popcount_rows

DAY_S = 86_400.0


def unrolled_threefry_on_cpu() -> bool:
    """Lower JAX's threefry PRNG on CPU unrolled, as on GPU (the same bits).

    On CPU JAX emits threefry as a rolled 5-step loop (quicker to compile): 2.7 ms per 100,000
    draws on the benchmark machine, against 0.8 ms unrolled; a round draws 3 x N numbers
    (availability and two partner draws). Private JAX API: returns False (and changes
    nothing) if it is not there.
    """
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as tf

        rule = tf._threefry2x32_lowering_rule
        mlir.register_lowering(tf.threefry2x32_p, rule, platform="cpu")
    except (ImportError, AttributeError):
        return False
    return True


def make_hour(n: int, t: int, period_s: float, rounds_per_hour: int, k: int):
    """A jitted function that advances the overlay by one hour of rounds."""

    def round_fn(carry, r):
        state, key, phase, pub_round, origin = carry
        now = r.astype(jnp.float32) * period_s
        k_on, k_rumor, k_pp = jax.random.split(jax.random.fold_in(key, r), 3)
        p_on = 0.2 + 0.15 * jnp.cos(2 * jnp.pi * (now / DAY_S - phase))
        online = jax.random.uniform(k_on, (n,)) < p_on
        state = dis.publish(state, jnp.where(pub_round == r, origin, -1), now)
        state = dis.gossip_round(state, k_rumor, online, now + period_s, k, mode="rumor")
        state = dis.gossip_round(state, k_pp, online, now + period_s, mode="push_pull")
        return (state, key, phase, pub_round, origin), online.sum()

    @jax.jit
    def hour(state, key, phase, pub_round, origin, hour_idx):
        rounds = hour_idx * rounds_per_hour + jnp.arange(rounds_per_hour)
        carry, n_online = jax.lax.scan(round_fn, (state, key, phase, pub_round, origin), rounds)
        return carry[0], n_online, dis.coverage(carry[0]), popcount_rows(carry[0].hot).sum()

    return hour


def simulate(args, hour, key, rounds_per_hour: int):
    """One simulated run; returns the final state and per-hour stats (host arrays)."""
    n, t = args.nodes, args.tasks
    k_phase, k_pub, k_origin, k_run = jax.random.split(key, 4)
    rounds = int(round(args.hours * 3600 / args.period))
    phase = jax.random.uniform(k_phase, (n,), maxval=0.25)
    pub_round = jax.random.randint(k_pub, (t,), 0, max(rounds // 2, 1))
    origin = jax.random.randint(k_origin, (t,), 0, n)
    state = dis.pack(dis.init_knowledge(n, t))  # bit-packed knowledge (dis.PackedKnowledge)
    online, cover, hot = [], [], []
    for h in range(math.ceil(rounds / rounds_per_hour)):
        state, n_on, cov, n_hot = hour(state, k_run, phase, pub_round, origin, h)
        online.append(np.asarray(n_on))
        cover.append(np.asarray(cov))
        hot.append(int(n_hot))
    return state, pub_round, np.concatenate(online), np.stack(cover), hot


def summarize(state, pub_round, period):
    """Dissemination outcomes: coverage, latency (virtual s) and traffic."""
    pub_s = np.asarray(pub_round, np.float64) * period
    informed = np.asarray(state.informed_at, np.float64)  # [N, T]
    lat = np.where(np.isfinite(informed), informed - pub_s[None, :], np.nan)
    t99 = np.nanquantile(lat, 0.99, axis=0)  # only meaningful when coverage is ~1
    return {
        "final_coverage_min": float(np.asarray(dis.coverage(state)).min()),
        "final_coverage_mean": float(np.asarray(dis.coverage(state)).mean()),
        "latency_median_s": float(np.nanmedian(lat)),
        "latency_p99_s_mean_over_tasks": float(np.mean(t99)),
        "messages_per_node": float(np.asarray(state.sent).mean()),
        "task_records_per_node": float(np.asarray(state.carried).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--period", type=float, default=60.0, help="gossip period Δ in seconds")
    ap.add_argument("--k", type=int, default=3, help="rumor-mongering counter")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/bench_overlay.json")
    ap.add_argument("--rolled-threefry", action="store_true", help="JAX's default CPU PRNG")
    args = ap.parse_args()
    unrolled = False if args.rolled_threefry else unrolled_threefry_on_cpu()

    rounds_per_hour = int(round(3600 / args.period))
    hour = make_hour(args.nodes, args.tasks, args.period, rounds_per_hour, args.k)
    key = jax.random.key(args.seed)

    warm = argparse.Namespace(**(vars(args) | {"hours": 1.0}))
    t0 = time.perf_counter()
    simulate(warm, hour, key, rounds_per_hour)  # compiles the hour; runs one simulated hour
    first = time.perf_counter() - t0
    walls, cpus, states = [], [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = simulate(args, hour, key, rounds_per_hour)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        states.append(out[0].knows)
    state, pub_round, online, cover, hot = out
    identical = all(bool(np.array_equal(np.asarray(s), np.asarray(states[0]))) for s in states)

    panel_key = jnp.arange(args.tasks, dtype=jnp.int32)
    all_on = jnp.ones((args.nodes,), bool)
    rv.select_reviewers(panel_key, all_on, 5).ids.block_until_ready()
    t0 = time.perf_counter()
    rv.select_reviewers(panel_key, all_on, 5).ids.block_until_ready()
    review_s = time.perf_counter() - t0

    rounds = int(round(args.hours * 3600 / args.period))
    median = statistics.median(walls)
    result = {
        "config": vars(args)
        | {
            "rounds": rounds,
            "backend": jax.default_backend(),
            "devices": str(jax.devices()),
            "jax": jax.__version__,
            "threefry_unrolled_on_cpu": unrolled,
            "state": "PackedKnowledge (bit-packed knows / hot)",
        },
        "compile_plus_one_hour_s": first,
        "run_s": walls,
        "run_s_median": median,
        "run_cpu_s": cpus,
        "run_cpu_s_median": statistics.median(cpus),
        "rounds_per_s": rounds / median,
        "node_task_rounds_per_s": rounds * args.nodes * args.tasks / median,
        "select_reviewers_s": review_s,
        "deterministic": identical,
        "mean_online_fraction": float(online.mean() / args.nodes),
        "hot_entries_per_hour": hot,
        "coverage_mean_per_hour": cover.mean(axis=1).tolist(),
    } | summarize(state, pub_round, args.period)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out_path)  # never leave a half-written results file

    rows = [
        ("nodes x tasks", f"{args.nodes:,} x {args.tasks}"),
        ("rounds (virtual)", f"{rounds} x {args.period:g} s = {args.hours:g} h"),
        ("compile + 1 simulated hour", f"{first:.1f} s"),
        (
            f"run, median of {args.repeats}",
            f"{median:.1f} s  ({', '.join(f'{w:.1f}' for w in walls)})",
        ),
        ("process CPU time, median", f"{statistics.median(cpus):.1f} s"),
        ("rounds / s (wall)", f"{rounds / median:.1f}"),
        ("select 5 reviewers x tasks", f"{review_s * 1000:.0f} ms"),
        ("mean online fraction", f"{result['mean_online_fraction']:.3f}"),
        (
            "final coverage min / mean",
            f"{result['final_coverage_min']:.4f} / {result['final_coverage_mean']:.4f}",
        ),
        (
            "latency median / p99 (virt.)",
            f"{result['latency_median_s'] / 60:.0f} / "
            f"{result['latency_p99_s_mean_over_tasks'] / 60:.0f} min",
        ),
        ("messages sent per node", f"{result['messages_per_node']:.0f}"),
        ("task records sent per node", f"{result['task_records_per_node']:.0f}"),
        ("deterministic in seed", str(identical)),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
