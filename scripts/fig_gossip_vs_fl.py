"""Scenario "partial participation, byte-equal, compute-bound": gossip vs. FL (issue 4).

NOT a reproduction of Hegedus et al.'s protocol (that is scripts/fig_dais.py, issue 12): here
FL takes K = 10 of 100 nodes per round, the round length is set by compute and the full-model
download, and the gossip period is matched to FL's bytes per node-hour, which shifts the budget
about 20x toward FL relative to the papers (ALGORITHMS.md §1.5, last point).

    python scripts/fig_gossip_vs_fl.py [--datasets spambase pendigits] [--seeds 0 1 2] \
        [--hours 3] [--runs outputs/gl] [--out results] [--plot-only] [--force] \
        [--lr-schedule pegasos]

Reproduces the comparisons of Hegedus, Danner, Jelasity (DAIS 2019; JPDC 2021) that
ALGORITHMS.md §1.7 / §7 #6-#8 list, with logistic regression on UCI Spambase and Pendigits, 100
nodes, always-on identical devices (`trace=constant`), the experiment configs
`conf/experiment/gl_{spambase,pendigits}.yaml` (local training: one pass over a node's data,
the same SGD settings for every algorithm). Every run is one `python -m dl.run` subprocess (the
exact command lines are written to the JSON), launched by `dl.analysis.launch`; a run whose
directory already holds the same command, completed, is reused unless `--force`.

Budget match (ALGORITHMS.md §1.5): FedAvg runs first with `overcommit=1.0` (so exactly K = 10
nodes download and upload per round) and its measured round length Delta_f (virtual time /
rounds) sets the gossip period Delta_g = Delta_f * 2 s_GL / (p_part (1 + s_up)), p_part = K/N,
s_up = s_GL = s. The measured bytes (up + down) per node per virtual hour of every run are
reported next to the target.

Curves per dataset and seed: iid: FL s=1, FL s=0.1 (upload_frac), gossip s=1, gossip s=0.1
(sample_frac), gossip s=1 without merging (merge=none); single_class: FL s=1, FL s=0.1,
gossip s=1, gossip s=0.1. Error = 1 - test accuracy (FL: the server model; gossip: the mean over
all 100 node models). Figures: results/gl_merge.png (a), gl_fl_s1.png (b), gl_fl_s01.png (c),
gl_single_class.png (d); numbers: results/gossip_vs_fl.json.

`--lr-schedule pegasos` runs every curve with the papers' update instead (ALGORITHMS.md §1.2:
SGD with eta = 1/(lambda t), t the model's age, lambda = the task's weight_decay = 1e-4; FL
clients start from the server's age, rounds x local steps) into outputs/gl_pegasos and writes
results/gossip_vs_fl_pegasos.json and results/gl_pegasos_*.png.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dl.analysis.launch import run_checked  # noqa: E402
from dl.analysis.runs import read_metrics  # noqa: E402
from dl.analysis.targets import first_time  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
K, N = 10, 100  # FedAvg clients per round, nodes (conf/algorithm/fedavg.yaml, gl_*.yaml)
# virtual hours and sim.eval_every_s per dataset (conf/experiment/gl_*.yaml); spambase converges
# within minutes under FL, so it is evaluated every 20 s; pendigits is still improving at 3 h
SETTINGS = {
    "spambase": {"hours": 3.0, "every": 20.0, "local_steps": 4},
    "pendigits": {"hours": 6.0, "every": 60.0, "local_steps": 8},
}
# time-to-target thresholds (0-1 test error), fixed before the comparison runs: a "loose" one
# every sensible curve reaches and a "tight" one near the logistic-regression floor
TARGETS = {"spambase": (0.12, 0.09), "pendigits": (0.20, 0.15)}
SCENARIO = "partial participation, byte-equal, compute-bound (not the papers' protocol)"


def curves(partition: str) -> list[tuple[str, str, float, str]]:
    """(label, algorithm, s, merge) for one partition."""
    out = [("FL s=1", "fedavg", 1.0, ""), ("FL s=0.1", "fedavg", 0.1, "")]
    out += [("GL s=1", "gossip", 1.0, "age"), ("GL s=0.1", "gossip", 0.1, "age")]
    if partition == "iid":
        out.append(("GL no-merge s=1", "gossip", 1.0, "none"))
    return out


def slug(label: str) -> str:
    return label.replace(" ", "_").replace("=", "").replace(".", "")


def gossip_period(delta_f: float, s: float) -> float:
    return delta_f * 2.0 * s / ((K / N) * (1.0 + s))


def command(ds, partition, alg, s, merge, seed, hours, period, run_dir, sched) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "dl.run",
        f"experiment=gl_{ds}",
        f"task.partition.scheme={partition}",
        f"algorithm={alg}",
        f"seed={seed}",
        f"sim.duration_s={hours * 3600:g}",
    ]
    if sched != "constant":
        cmd.append(f"task.train.lr_schedule={sched}")
    if alg == "fedavg":
        cmd += ["algorithm.overcommit=1.0", f"algorithm.upload_frac={s:g}"]
    else:
        cmd += [f"algorithm.period_s={period:.4f}", f"algorithm.sample_frac={s:g}"]
        cmd += [f"algorithm.merge={merge}"]
    cmd += ["logger=disabled", "sim.progress=false", f"hydra.run.dir={run_dir}"]
    return cmd


def run(cmd: list[str], run_dir: Path, force: bool) -> list[dict]:
    """Rows of the run `cmd`, run first (dl.analysis.launch) unless `run_dir` holds it
    completed with the same command line."""
    shown = " ".join(shlex.quote(c) for c in ["python"] + cmd[1:])
    rec = run_checked(cmd, run_dir, ROOT, key=shown, force=force)
    if rec["status"] == "ran":
        print(f"[run] {shown}\n      {rec['wall_s']:.0f} s wall", flush=True)
    return read_metrics(run_dir / "metrics.jsonl")


def summarize_run(rows: list[dict]) -> dict:
    t = np.array([r["virtual_time_s"] for r in rows])
    err = 1.0 - np.array([r["test_accuracy"] for r in rows])
    last = rows[-1]
    traffic = (last["bytes_up"] + last["bytes_down"]) / N / (last["virtual_time_s"] / 3600.0)
    return {
        "t_s": t.tolist(),
        "error": err.tolist(),
        "bytes_per_node_per_hour": traffic,
        "bytes_up_per_node_per_hour": last["bytes_up"] / N / (last["virtual_time_s"] / 3600.0),
        "rounds": last.get("round"),
        "age_mean": last.get("age_mean"),  # gossip: SGD steps along a model's lineage
        "wall_time_s": last.get("wall_time_s"),
    }


def on_grid(t, err, grid, every):
    """Error at each grid time: the last evaluation at or before it (FedAvg evaluates at the end
    of the round that crosses each eval time, a few seconds late)."""
    t, err = np.asarray(t), np.asarray(err)
    idx = np.searchsorted(t, grid + 1e-3 + 0.5 * every, side="right") - 1
    return err[np.clip(idx, 0, len(err) - 1)]


def aggregate(per_seed: list[dict], hours: float, every: float, targets) -> dict:
    grid = np.arange(0.0, hours * 3600.0 + 1e-6, every)
    errs = np.stack([on_grid(r["t_s"], r["error"], grid, every) for r in per_seed])
    mean = errs.mean(0)
    tail = int(round(1800.0 / every))  # last 30 virtual minutes
    out = {
        "grid_s": grid.tolist(),
        "error_mean": mean.tolist(),
        "error_min": errs.min(0).tolist(),
        "error_max": errs.max(0).tolist(),
        "final_error_mean": float(mean[-1]),
        "final_error_per_seed": errs[:, -1].tolist(),
        "last30min_error_mean": float(errs[:, -tail:].mean()),
        "bytes_per_node_per_hour": float(np.mean([r["bytes_per_node_per_hour"] for r in per_seed])),
    }
    for name, target in zip(("loose", "tight"), targets):
        out[f"time_to_{name}_s"] = first_time(grid, mean, target, lower=True)
        out[f"time_to_{name}_s_per_seed"] = [first_time(grid, e, target, lower=True) for e in errs]
    return out


def plot(panel, data, datasets, out: Path, title: str) -> None:
    """panel: list of (partition, label, style) per subplot (one subplot per dataset)."""
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 3.8), dpi=100)
    axes = np.atleast_1d(axes)
    for ax, ds in zip(axes, datasets):
        for partition, label, color, ls in panel:
            c = data[ds][partition]["curves"].get(label)
            if c is None:
                continue
            h = np.asarray(c["grid_s"]) / 3600.0
            ax.plot(h[1:], c["error_mean"][1:], color=color, ls=ls, lw=1.6, label=label)
            ax.fill_between(h[1:], c["error_min"][1:], c["error_max"][1:], color=color, alpha=0.15)
        lo, hi = TARGETS[ds]
        ax.axhline(hi, color="gray", lw=0.7, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(data[ds]["eval_every_s"] / 3600.0, data[ds]["hours"])
        ax.set_xlabel("virtual time (hours, log)")
        ax.set_ylabel("0-1 test error (log)")
        ax.set_title(f"{ds} ({panel[0][0]})")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"[{SCENARIO}]\n{title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["spambase", "pendigits"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--hours", type=float, default=None, help="override SETTINGS hours")
    ap.add_argument("--runs", type=Path, default=ROOT / "outputs" / "gl")
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--force", action="store_true", help="rerun even if a run is on disk")
    ap.add_argument("--plot-only", action="store_true", help="only read runs already on disk")
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "pegasos"])
    args = ap.parse_args()
    sched = args.lr_schedule
    tag = "" if sched == "constant" else f"_{sched}"
    sfx = ", Pegasos lr 1/(lambda t)" if tag else ""
    if tag and args.runs == ROOT / "outputs" / "gl":
        args.runs = ROOT / "outputs" / f"gl{tag}"
    args.out.mkdir(parents=True, exist_ok=True)

    data: dict = {}
    commands: list[str] = []
    for ds in args.datasets:
        hours = args.hours or SETTINGS[ds]["hours"]
        every = SETTINGS[ds]["every"]
        data[ds] = {"hours": hours, "eval_every_s": every}
        for partition in ("iid", "single_class"):
            per_curve: dict[str, list[dict]] = {}
            deltas = []
            for seed in args.seeds:
                delta_f = None
                for label, alg, s, merge in curves(partition):
                    rd = args.runs / ds / partition / slug(label) / f"seed{seed}"
                    period = gossip_period(delta_f, s) if alg == "gossip" else 0.0
                    cmd = command(ds, partition, alg, s, merge, seed, hours, period, rd, sched)
                    if args.plot_only:
                        rows = read_metrics(rd / "metrics.jsonl")
                    else:
                        rows = run(cmd, rd, args.force)
                    commands.append(" ".join(["python"] + [shlex.quote(c) for c in cmd[1:]]))
                    if alg == "fedavg" and s == 1.0:
                        last = rows[-1]
                        delta_f = last["virtual_time_s"] / last["round"]  # measured round length
                        deltas.append(delta_f)
                    r = summarize_run(rows)
                    r["seed"], r["period_s"] = seed, period if alg == "gossip" else None
                    per_curve.setdefault(label, []).append(r)
            delta_f = float(np.mean(deltas))
            entry = {
                "delta_f_s": delta_f,
                "p_part": K / N,
                "gossip_period_s": {f"s={s:g}": gossip_period(delta_f, s) for s in (1.0, 0.1)},
                "curves": {},
            }
            for label, runs in per_curve.items():
                agg = aggregate(runs, hours, every, TARGETS[ds])
                agg["runs"] = [
                    {
                        k: r[k]
                        for k in (
                            "seed",
                            "period_s",
                            "bytes_per_node_per_hour",
                            "rounds",
                            "age_mean",
                            "wall_time_s",
                        )
                    }
                    for r in runs
                ]
                # sequential SGD steps along the evaluated model's lineage per virtual hour:
                # FL: rounds x local steps (the server model); gossip: mean node-model age
                steps = [
                    (
                        r["rounds"] * SETTINGS[ds]["local_steps"]
                        if r["age_mean"] is None
                        else r["age_mean"]
                    )
                    / hours
                    for r in runs
                ]
                agg["lineage_sgd_steps_per_hour"] = float(np.mean(steps))
                entry["curves"][label] = agg
            data[ds][partition] = entry

    # acceptance checks (ALGORITHMS.md §1.7 / §7 #6-#8), on seed-mean curves
    checks: dict = {}
    for ds in args.datasets:
        iid, sc = data[ds]["iid"]["curves"], data[ds]["single_class"]["curves"]
        lo, hi = TARGETS[ds]

        def tt(c, which="tight"):
            v = c[f"time_to_{which}_s"]
            return np.inf if v is None else v

        checks[ds] = {
            "merge_beats_no_merge": {
                "time_to_loose_s": [
                    iid["GL s=1"]["time_to_loose_s"],
                    iid["GL no-merge s=1"]["time_to_loose_s"],
                ],
                "time_to_tight_s": [
                    iid["GL s=1"]["time_to_tight_s"],
                    iid["GL no-merge s=1"]["time_to_tight_s"],
                ],
                "final_error": [
                    iid["GL s=1"]["final_error_mean"],
                    iid["GL no-merge s=1"]["final_error_mean"],
                ],
                "holds": tt(iid["GL s=1"], "loose") < tt(iid["GL no-merge s=1"], "loose"),
            },
            "fl_ge_gossip_s1": {
                "time_to_tight_s [FL, GL]": [
                    iid["FL s=1"]["time_to_tight_s"],
                    iid["GL s=1"]["time_to_tight_s"],
                ],
                "holds": tt(iid["FL s=1"]) <= tt(iid["GL s=1"]),
            },
            "gossip_beats_fl_s01": {
                "time_to_tight_s [FL, GL]": [
                    iid["FL s=0.1"]["time_to_tight_s"],
                    iid["GL s=0.1"]["time_to_tight_s"],
                ],
                "holds": tt(iid["GL s=0.1"]) < tt(iid["FL s=0.1"]),
            },
            "single_class_gossip_loses_edge": {
                "final_error [FL s=1, GL s=1, FL s=0.1, GL s=0.1]": [
                    sc[c]["final_error_mean"] for c in ("FL s=1", "GL s=1", "FL s=0.1", "GL s=0.1")
                ],
                "time_to_loose_s [FL s=1, GL s=1, FL s=0.1, GL s=0.1]": [
                    sc[c]["time_to_loose_s"] for c in ("FL s=1", "GL s=1", "FL s=0.1", "GL s=0.1")
                ],
                "holds": tt(sc["FL s=1"], "loose") <= tt(sc["GL s=1"], "loose")
                and tt(sc["FL s=0.1"], "loose") <= tt(sc["GL s=0.1"], "loose"),
            },
        }
    summary = {
        "scenario": SCENARIO,
        "command": "python scripts/fig_gossip_vs_fl.py " + " ".join(sys.argv[1:]),
        "datasets": args.datasets,
        "seeds": args.seeds,
        "settings": {
            ds: {"hours": data[ds]["hours"], "eval_every_s": data[ds]["eval_every_s"]}
            for ds in args.datasets
        },
        "targets_error": {
            ds: {"loose": TARGETS[ds][0], "tight": TARGETS[ds][1]} for ds in args.datasets
        },
        "lr_schedule": args.lr_schedule,
        "budget_rule": "Delta_g = Delta_f * 2 s / (p_part (1 + s)), p_part = K/N = 0.1",
        "checks": checks,
        "data": data,
        "run_commands": commands,
    }
    (args.out / f"gossip_vs_fl{tag}.json").write_text(json.dumps(summary, indent=1))

    ds = args.datasets
    plot(
        [("iid", "GL s=1", "C0", "-"), ("iid", "GL no-merge s=1", "C3", "--")],
        data,
        ds,
        args.out / f"gl{tag}_merge.png",
        "(a) gossip: age-weighted merge vs. no merge (random walk)" + sfx,
    )
    plot(
        [("iid", "FL s=1", "C1", "-"), ("iid", "GL s=1", "C0", "-")],
        data,
        ds,
        args.out / f"gl{tag}_fl_s1.png",
        "(b) FL vs. gossip, no compression, equal bytes/node/hour" + sfx,
    )
    plot(
        [
            ("iid", "FL s=0.1", "C1", "-"),
            ("iid", "GL s=0.1", "C0", "-"),
            ("iid", "FL s=1", "C1", ":"),
            ("iid", "GL s=1", "C0", ":"),
        ],
        data,
        ds,
        args.out / f"gl{tag}_fl_s01.png",
        "(c) FL vs. gossip, subsampling s=0.1 (dotted: s=1)" + sfx,
    )
    plot(
        [
            ("single_class", "FL s=1", "C1", "-"),
            ("single_class", "GL s=1", "C0", "-"),
            ("single_class", "FL s=0.1", "C1", "--"),
            ("single_class", "GL s=0.1", "C0", "--"),
        ],
        data,
        ds,
        args.out / f"gl{tag}_single_class.png",
        "(d) single class per node: FL vs. gossip (solid s=1, dashed s=0.1)" + sfx,
    )
    for d in ds:
        for k, v in checks[d].items():
            print(f"{d:10s} {k:32s} holds={v['holds']}")


if __name__ == "__main__":
    main()
