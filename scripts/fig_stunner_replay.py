"""STUNner replay check (issue 3): simulated vs. trace online fraction, daily cycle, hourly profile.

    python scripts/fig_stunner_replay.py [--nodes 1000] [--days 7] [--seed 0] [--root DIR] \
        [--out results/stunner_replay.png] [--json results/stunner_replay.json]

For each threshold (100, 80) it builds the availability of `--nodes` nodes over `--days` simulated
days with `dl.traces.stunner.build_stunner` (the same call `trace=stunner` makes), and compares
- the time-weighted online fraction of the replay (`online_time_fraction`) with the trace's own
  (`trace_online_fraction`, online ms / all ms over every segment);
- the hour-of-day profile of the replay (`hourly_profile`, t mod 86400 = UTC time of day) with the
  trace's UTC hourly profile (`trace_hourly_profile`).
It also cross-checks `is_online` (the jitted query the simulator uses) against a host-side
interval-membership count on random (node, time) probes. Writes a PNG (online fraction vs. virtual
time over the week + hour-of-day profile) and a JSON with the numbers.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dl.data.root import resolve_data_root  # noqa: E402
from dl.traces.availability import (  # noqa: E402
    hourly_profile,
    is_online,
    online_fraction,
    online_time_fraction,
    to_numpy,
)
from dl.traces.stunner import (  # noqa: E402
    build_stunner,
    load_stunner,
    trace_hourly_profile,
    trace_online_fraction,
)

THRESHOLDS = (100, 80)
EXPECTED = {100: 0.23, 80: 0.35}  # conf/trace/stunner.yaml, Berta et al. 2014
TOLERANCE = 0.02


def probe_is_online(av, horizon_s: float, seed: int, probes: int = 20_000) -> int:
    """Mismatches between `is_online` and a numpy interval-membership count on random probes."""
    times, first = to_numpy(av)
    rng = np.random.default_rng(seed + 1)
    node = rng.integers(0, first.size, probes)
    t = rng.uniform(0.0, horizon_s, probes).astype(np.float32)
    flips = (times[node] <= t[:, None]).sum(1)
    host = first[node] ^ (flips % 2 == 1)
    query = jax.jit(jax.vmap(lambda ti, i: is_online(av, ti)[i]))
    dev = np.asarray(query(jnp.asarray(t), jnp.asarray(node)))
    return int((host != dev).sum())


def replay(root, thr: int, n: int, horizon_s: float, seed: int, step_s: float) -> dict:
    t0 = time.perf_counter()
    trace = load_stunner(root, thr)
    av = build_stunner(root, thr, n=n, horizon_s=horizon_s, seed=seed, trace=trace)
    build_s = time.perf_counter() - t0
    ts = np.arange(0.0, horizon_s, step_s)
    sweep = jax.jit(jax.vmap(online_fraction, in_axes=(None, 0)))
    series = np.asarray(sweep(av, jnp.asarray(ts, jnp.float32)))
    sim = online_time_fraction(av, horizon_s)
    ref = trace_online_fraction(trace)
    sim_h = hourly_profile(av, horizon_s, step_s)
    ref_h = trace_hourly_profile(trace)
    daily = series.reshape(-1, int(round(86400 / step_s))) if horizon_s % 86400 == 0 else None
    return {
        "threshold": thr,
        "segments": int(trace.first_online.size),
        "users": int(trace.user_index.max() + 1),
        "trace_days": float(trace.seg_len_ms.sum() / 86_400_000),
        "trace_online_fraction": ref,
        "sim_online_fraction": sim,
        "abs_diff": abs(sim - ref),
        "expected": EXPECTED[thr],
        "within_tolerance_of_trace": abs(sim - ref) <= TOLERANCE,
        "within_tolerance_of_expected": abs(sim - EXPECTED[thr]) <= TOLERANCE,
        "sampled_mean_online_fraction": float(series.mean()),
        "sampled_min": float(series.min()),
        "sampled_max": float(series.max()),
        "daily_min_max": (
            [[float(d.min()), float(d.max())] for d in daily] if daily is not None else None
        ),
        "sim_hourly_profile_utc": sim_h.round(4).tolist(),
        "trace_hourly_profile_utc": ref_h.round(4).tolist(),
        "hourly_profile_max_abs_diff": float(np.abs(sim_h - ref_h).max()),
        "hourly_peak_hour_utc": {"sim": int(sim_h.argmax()), "trace": int(ref_h.argmax())},
        "hourly_trough_hour_utc": {"sim": int(sim_h.argmin()), "trace": int(ref_h.argmin())},
        "max_transitions_per_node": int(av.times.shape[1]),
        "is_online_probe_mismatches": probe_is_online(av, horizon_s, seed),
        "build_wall_s": build_s,
        "_series": series,
        "_ts": ts,
    }


def plot(results: list[dict], out: Path, n: int) -> None:
    fig, (a1, a2) = plt.subplots(
        1, 2, figsize=(10, 3.4), dpi=90, gridspec_kw={"width_ratios": [2.4, 1]}
    )
    colors = {100: "tab:blue", 80: "tab:orange"}
    for r in results:
        c, thr = colors[r["threshold"]], r["threshold"]
        a1.plot(r["_ts"] / 86400.0, r["_series"], color=c, lw=0.8, label=f"replay, thr{thr}")
        a1.axhline(
            r["trace_online_fraction"],
            color=c,
            ls="--",
            lw=0.8,
            label=f"trace mean thr{thr} ({r['trace_online_fraction']:.3f})",
        )
        h = np.arange(24) + 0.5
        a2.plot(h, r["sim_hourly_profile_utc"], color=c, lw=1.5, label=f"replay thr{thr}")
        a2.plot(h, r["trace_hourly_profile_utc"], color=c, ls=":", lw=1.5, label=f"trace thr{thr}")
    a1.set_xlabel("virtual time (days; t = 0 is 00:00 UTC)")
    a1.set_ylabel("fraction of nodes online")
    a1.set_title(f"STUNner replay, {n} nodes, one week", fontsize=9)
    a1.set_xlim(0, results[0]["_ts"][-1] / 86400.0)
    a1.set_ylim(0.1, 0.55)
    a1.grid(alpha=0.3)
    a1.legend(fontsize=6, ncol=2, loc="upper right")
    a2.set_xlabel("hour of day (UTC)")
    a2.set_ylabel("mean online fraction")
    a2.set_title("hour-of-day profile", fontsize=9)
    a2.set_xlim(0, 24)
    a2.set_xticks(range(0, 25, 6))
    a2.grid(alpha=0.3)
    a2.legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step-s", type=float, default=300.0)
    ap.add_argument("--extra-seeds", type=int, default=4, help="more seeds for the spread")
    ap.add_argument("--root", default=None, help="data root (default: $DL_DATA_ROOT/../shared)")
    ap.add_argument("--out", type=Path, default=Path("results/stunner_replay.png"))
    ap.add_argument("--json", type=Path, default=Path("results/stunner_replay.json"))
    a = ap.parse_args()
    root = resolve_data_root(a.root)
    horizon = a.days * 86400.0
    results = [replay(root, thr, a.nodes, horizon, a.seed, a.step_s) for thr in THRESHOLDS]
    plot(results, a.out, a.nodes)
    for r in results:  # seed-to-seed spread of the replay's online fraction (no figure)
        thr = r["threshold"]
        tr = load_stunner(root, thr)
        fr = [r["sim_online_fraction"]] + [
            online_time_fraction(
                build_stunner(root, thr, n=a.nodes, horizon_s=horizon, seed=s, trace=tr), horizon
            )
            for s in range(a.seed + 1, a.seed + 1 + a.extra_seeds)
        ]
        r["seed_spread"] = {
            "seeds": list(range(a.seed, a.seed + 1 + a.extra_seeds)),
            "sim_online_fraction": [round(f, 4) for f in fr],
            "mean": float(np.mean(fr)),
            "std": float(np.std(fr)),
        }
    doc = {
        "nodes": a.nodes,
        "days": a.days,
        "seed": a.seed,
        "sample_step_s": a.step_s,
        "tolerance": TOLERANCE,
        "command": "python scripts/fig_stunner_replay.py",
        "thresholds": {
            str(r["threshold"]): {k: v for k, v in r.items() if not k.startswith("_")}
            for r in results
        },
    }
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=1) + "\n")
    for r in results:
        print(
            f"thr{r['threshold']}: replay {r['sim_online_fraction']:.4f} vs trace "
            f"{r['trace_online_fraction']:.4f} (|diff| {r['abs_diff']:.4f}; expected "
            f"~{r['expected']}); daily range {r['sampled_min']:.3f}-{r['sampled_max']:.3f}; "
            f"peak hour {r['hourly_peak_hour_utc']}; is_online mismatches "
            f"{r['is_online_probe_mismatches']}; over seeds "
            f"{r['seed_spread']['mean']:.4f} +- {r['seed_spread']['std']:.4f}"
        )
    print(f"wrote {a.out} and {a.json}")
    bad = [r["threshold"] for r in results if not r["within_tolerance_of_trace"]]
    if bad:
        raise SystemExit(f"error: replay online fraction off the trace's by > {TOLERANCE}: {bad}")


if __name__ == "__main__":
    main()
