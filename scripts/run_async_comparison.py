"""Issue 3: FedAvg vs. FedAsync vs. FedBuff on Fashion-MNIST with STUNner availability.

    python scripts/run_async_comparison.py [--force] [--only fedavg fedbuff] [--no-run] \
        [--seed S] [--runs results/runs] [--out results]

`--seed S` (S > 0) runs the same three with `seed=S` into `<runs>/seed<S>/<name>`; the analysis
always reports seed 0 and adds a per-seed table (and dashed curves) for every complete seed<S>.

Runs `conf/experiment/fmnist_stunner_{fedavg,fedasync,fedbuff}.yaml` one after the other
(`python -m dl.run experiment=<name> logger=disabled hydra.run.dir=<runs>/<name>`, launched by
`dl.analysis.launch`), skipping a run whose folder holds it completed unless --force, then reads
the three metrics.jsonl and writes
- `<out>/async_comparison.json`: per run, virtual time / round / energy / bytes at the first
  evaluation reaching 70% and 80% test accuracy ("not reached" otherwise), final and best accuracy,
  accuracy at the common horizon, wall time, and the async diagnostics (staleness histogram,
  uploads lost, wasted energy, nodes training, online fraction);
- `<out>/async_comparison.md`: the same as a markdown table;
- `<out>/async_comparison.png`: test accuracy vs. virtual hours and vs. energy (kJ).
"""

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dl.analysis.launch import is_done, run_checked  # noqa: E402
from dl.analysis.runs import read_metrics  # noqa: E402
from dl.analysis.targets import first_reaching, first_reaching_mean, value_at  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RUNS = ("fedavg", "fedasync", "fedbuff")
TARGETS = (0.70, 0.80)
EXPERIMENT = "fmnist_stunner_{}"


def run_one(name: str, run_dir: Path, force: bool, seed: int = 0) -> float | None:
    """Runs one experiment unless its folder holds it completed; returns the wall seconds if
    it ran (also written to wall.json)."""
    cmd = [
        sys.executable,
        "-m",
        "dl.run",
        f"experiment={EXPERIMENT.format(name)}",
        "logger=disabled",
        f"hydra.run.dir={run_dir}",
        "sim.progress=false",
    ] + ([f"seed={seed}"] if seed else [])
    if not force and is_done(run_dir):
        print(f"skip {name}: {run_dir} holds it completed (use --force to rerun)", flush=True)
        return None
    print("run:", " ".join(cmd[1:]), flush=True)
    rec = run_checked(cmd, run_dir, REPO, force=True)
    (run_dir / "wall.json").write_text(json.dumps({"wall_s": rec["wall_s"], "cmd": cmd[1:]}) + "\n")
    print(f"  done in {rec['wall_s']:.0f} s wall", flush=True)
    return rec["wall_s"]


def reaching(rows: list[dict], target: float, window: int = 1) -> dict | None:
    """The first evaluation at which test accuracy (its mean over the last `window`) reaches
    `target` (dl.analysis.targets), or None."""
    if window == 1:
        i = first_reaching(rows, "test_accuracy", target)
    else:
        i = first_reaching_mean(rows, "test_accuracy", target, window)
    return None if i is None else rows[i]


def analyse(name: str, run_dir: Path) -> dict:
    rows = read_metrics(run_dir / "metrics.jsonl")
    last = rows[-1]
    n = int(last.get("num_nodes", 1))
    out: dict = {
        "run": name,
        "experiment": EXPERIMENT.format(name),
        "metrics": str(run_dir / "metrics.jsonl"),
        "num_nodes": n,
        "evaluations": len(rows),
        "virtual_time_end_s": last["virtual_time_s"],
        "final_accuracy": last["test_accuracy"],
        "best_accuracy": max(r["test_accuracy"] for r in rows),
        "best_accuracy_time_s": max(rows, key=lambda r: r["test_accuracy"])["virtual_time_s"],
        "rounds_or_server_versions": last.get("round"),
        "energy_total_j": last.get("energy_j"),
        "energy_wasted_j": last.get("energy_wasted_j"),
        "bytes_up": last.get("bytes_up"),
        "bytes_down": last.get("bytes_down"),
        "online_fraction_mean": float(np.mean([r["online_fraction"] for r in rows])),
        "wall_time_s_in_run": last.get("wall_time_s"),
    }
    wall_file = run_dir / "wall.json"
    if wall_file.exists():
        out["wall_time_s_subprocess"] = json.loads(wall_file.read_text())["wall_s"]
    for target in TARGETS:
        key = f"to_{int(round(target * 100))}"
        r = reaching(rows, target)
        if r is None:
            out[key] = "not reached"
            continue
        e = r.get("energy_j", 0.0)
        out[key] = {
            "virtual_time_s": r["virtual_time_s"],
            "virtual_time_h": r["virtual_time_s"] / 3600.0,
            "round": r.get("round"),
            "test_accuracy": r["test_accuracy"],
            "energy_j": e,
            "energy_per_node_j": e / n,
            "energy_wasted_j": r.get("energy_wasted_j"),
            "bytes_up": r.get("bytes_up", 0.0),
            "bytes_down": r.get("bytes_down", 0.0),
            "bytes_up_down": r.get("bytes_up", 0.0) + r.get("bytes_down", 0.0),
        }
        sm = reaching(rows, target, window=3)
        out[key]["smoothed3_virtual_time_s"] = sm["virtual_time_s"] if sm else "not reached"
    # async diagnostics (absent for FedAvg)
    if "staleness_hist" in last:
        hist = np.asarray(last["staleness_hist"], float)
        cdf = np.cumsum(hist) / max(hist.sum(), 1.0)
        out["async"] = {
            "updates_applied": last.get("updates_applied"),
            "updates_stale_dropped": last.get("updates_stale"),
            "arrivals": last.get("arrivals"),
            "updates_lost_offline": last.get("updates_lost"),
            "uploads_server_down": last.get("uploads_server_down"),
            "arrivals_deferred": last.get("arrivals_deferred"),
            "dispatched": last.get("dispatched"),
            "nodes_training_mean": float(np.mean([r["nodes_training"] for r in rows[1:]])),
            "staleness_mean": last.get("staleness_mean"),
            "staleness_median": int(np.searchsorted(cdf, 0.5)),
            "staleness_p90": int(np.searchsorted(cdf, 0.9)),
            "staleness_last_bin_share": float(hist[-1] / max(hist.sum(), 1.0)),
            "staleness_hist": last["staleness_hist"],
        }
    else:
        out["fedavg"] = {
            "rounds": last.get("round"),
            "clients_last_round": last.get("clients_last_round"),
        }
    return out


def fmt_t(x) -> str:
    if not isinstance(x, dict):
        return "not reached"
    return f"{x['virtual_time_s'] / 3600:.2f} h ({x['virtual_time_s']:.0f} s, rnd {x['round']})"


def table(res: list[dict], horizon: float) -> str:
    base = {t: res[0].get(f"to_{t}") for t in (70, 80)}
    lines = [
        "| run | time to 70% | time to 80% | energy to 70% (total kJ / per node J) "
        f"| bytes up+down to 70% | acc @ {horizon / 3600:.2f} h | final acc (at) | best acc "
        "| wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res:
        t70 = r["to_70"]
        e70 = (
            f"{t70['energy_j'] / 1000:.1f} / {t70['energy_per_node_j']:.1f}"
            if isinstance(t70, dict)
            else "-"
        )
        b70 = f"{t70['bytes_up_down'] / 1e9:.3f} GB" if isinstance(t70, dict) else "-"
        speed = []
        for t in (70, 80):
            b, x = base[t], r[f"to_{t}"]
            if r is not res[0] and isinstance(b, dict) and isinstance(x, dict):
                speed.append(f"{b['virtual_time_s'] / x['virtual_time_s']:.1f}x")
            else:
                speed.append("")
        wall = r.get("wall_time_s_subprocess") or r.get("wall_time_s_in_run") or 0.0
        lines.append(
            f"| {r['run']} | {fmt_t(r['to_70'])} {speed[0]} | {fmt_t(r['to_80'])} {speed[1]} "
            f"| {e70} | {b70} | {r['acc_at_common_horizon']:.3f} "
            f"| {r['final_accuracy']:.3f} ({r['virtual_time_end_s'] / 3600:.2f} h) "
            f"| {r['best_accuracy']:.3f} | {wall / 60:.1f} min |"
        )
    lines.append("")
    lines.append(
        "Speed-ups (`Nx`) are FedAvg's virtual time over the run's, at the same target. Times are "
        "those of the first evaluation (every 120 virtual s) at or above the target."
    )
    diag = [
        "",
        "| run | server updates | uploads applied | lost (node went offline) | deferred "
        "| staleness mean / median / p90 | nodes training (mean) | wasted energy (kJ) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res:
        a = r.get("async")
        if a is None:
            diag.append(
                f"| {r['run']} | {r['rounds_or_server_versions']} rounds | "
                f"<= {r['rounds_or_server_versions'] * 10} (K = 10 / round) | - | - | 0 "
                "| 13 / round "
                f"| {(r['energy_wasted_j'] or 0) / 1000:.1f} (stragglers) |"
            )
            continue
        diag.append(
            f"| {r['run']} | {r['rounds_or_server_versions']} | {a['updates_applied']} "
            f"| {a['updates_lost_offline']:.0f} | {a['arrivals_deferred']:.0f} "
            f"| {a['staleness_mean']:.1f} / {a['staleness_median']} / {a['staleness_p90']} "
            f"| {a['nodes_training_mean']:.1f} | {(r['energy_wasted_j'] or 0) / 1000:.1f} |"
        )
    return "\n".join(lines + diag) + "\n"


def plot(res: list[dict], runs_dir: Path, out: Path, seeds: tuple[int, ...] = (0,)) -> None:
    """Seed 0 solid; other seeds (if given) thin and dashed in the same colour."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=90)
    colors = dict(zip(RUNS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    for seed in seeds:
        for r in res:
            rows = read_metrics(seed_dir(runs_dir, seed) / r["run"] / "metrics.jsonl")
            acc = [x["test_accuracy"] for x in rows]
            style = dict(color=colors[r["run"]], lw=1.5, marker=".", ms=3)
            if seed != 0:
                style.update(lw=0.9, ls="--", marker=None, alpha=0.8)
            label = r["run"] if seed == 0 else f"{r['run']} (seed {seed})"
            a1.plot([x["virtual_time_s"] / 3600 for x in rows], acc, label=label, **style)
            a2.plot([x["energy_j"] / 1000 for x in rows], acc, label=label, **style)
    for ax in (a1, a2):
        for t in TARGETS:
            ax.axhline(t, color="grey", ls=":", lw=0.8)
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0.3, 0.9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", ncol=2 if len(seeds) > 1 else 1)
    a1.set_xlabel("virtual time (hours)")
    a2.set_xlabel("energy, all nodes (kJ)")
    a1.set_title("FMNIST CNN, 1,000 nodes, STUNner thr100, FLASH speeds", fontsize=9)
    a2.set_title("accuracy vs. energy (WiFi)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def seed_dir(runs_dir: Path, seed: int) -> Path:
    return runs_dir if seed == 0 else runs_dir / f"seed{seed}"


def seeds_table(by_seed: dict[int, list[dict]]) -> str:
    """Time to 70/80% (raw and 3-eval smoothed) per run and seed."""

    def t(x, smooth=False):
        if not isinstance(x, dict):
            return "n.r."
        v = x["smoothed3_virtual_time_s"] if smooth else x["virtual_time_s"]
        return "n.r." if isinstance(v, str) else f"{v:.0f}"

    lines = [
        "| seed | run | to 70% (s) | to 80% (s) | to 70%, 3-eval mean (s) "
        "| to 80%, 3-eval mean (s) "
        "| acc @ common horizon | final acc (at s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed, res in sorted(by_seed.items()):
        for r in res:
            lines.append(
                f"| {seed} | {r['run']} | {t(r['to_70'])} | {t(r['to_80'])} "
                f"| {t(r['to_70'], True)} | {t(r['to_80'], True)} "
                f"| {r['acc_at_common_horizon']:.3f} "
                f"| {r['final_accuracy']:.3f} ({r['virtual_time_end_s']:.0f}) |"
            )
    return "\n".join(lines) + "\n"


def analyse_seed(runs_dir: Path) -> list[dict]:
    res = [analyse(n, runs_dir / n) for n in RUNS]
    horizon = min(r["virtual_time_end_s"] for r in res)
    for r in res:
        rows = read_metrics(runs_dir / r["run"] / "metrics.jsonl")
        r["acc_at_common_horizon"] = value_at(rows, horizon + 1e-6, "test_accuracy")
        r["common_horizon_s"] = horizon
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--force", action="store_true", help="rerun even if a run is completed")
    ap.add_argument("--only", nargs="*", choices=RUNS, help="run only these (analysis: all)")
    ap.add_argument("--no-run", action="store_true", help="only analyse existing runs")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed to run (0: <runs>/<name>, S > 0: <runs>/seed<S>/<name>)",
    )
    ap.add_argument("--runs", type=Path, default=Path("results/runs"))
    ap.add_argument("--out", type=Path, default=Path("results"))
    a = ap.parse_args()
    runs_dir = a.runs if a.runs.is_absolute() else REPO / a.runs
    out = a.out if a.out.is_absolute() else REPO / a.out
    if not a.no_run:
        for name in a.only or RUNS:
            run_one(name, seed_dir(runs_dir, a.seed) / name, a.force, a.seed)
    base = seed_dir(runs_dir, 0)
    missing = [n for n in RUNS if not (base / n / "metrics.jsonl").exists()]
    if missing:
        raise SystemExit(f"error: no seed-0 metrics.jsonl for {missing} under {base}")
    res = analyse_seed(base)
    by_seed = {0: res}
    for d in sorted(runs_dir.glob("seed*")):
        if d.name[4:].isdigit() and all((d / n / "summary.json").exists() for n in RUNS):
            by_seed[int(d.name[4:])] = analyse_seed(d)
    horizon = res[0]["common_horizon_s"]
    doc = {
        "targets": list(TARGETS),
        "common_horizon_s": horizon,
        "command": "python scripts/run_async_comparison.py",
        "runs": res,
        "other_seeds": {str(k): v for k, v in by_seed.items() if k != 0},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "async_comparison.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = table(res, horizon)
    if len(by_seed) > 1:
        md += "\nPer seed (n.r. = not reached within the run):\n\n" + seeds_table(by_seed)
    (out / "async_comparison.md").write_text(md)
    plot(res, runs_dir, out / "async_comparison.png", tuple(sorted(by_seed)))
    print(md)
    print(f"wrote {out / 'async_comparison.json'}, .md, .png")


if __name__ == "__main__":
    main()
