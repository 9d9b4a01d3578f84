"""Several tasks on one population (issue 5): discovery, review, choice and training per task.

    python scripts/fig_overlay.py                       # runs experiment=two_task_stunner, plots
    python scripts/fig_overlay.py --run-dir DIR         # plots an existing run (no simulation)
        [--out results/two_task.png] [--json results/two_task.json] [overrides...]

Runs `python -m dl.run experiment=two_task_stunner logger=disabled` into
`results/runs/two_task` (extra arguments are passed on as Hydra overrides), then reads its
`overlay.json` (per overlay round) and `metrics.jsonl` (per evaluation) and plots:
(a) the fraction of online nodes that know each task vs. virtual time, (b) participants per
task (online nodes training it) and online nodes, (c) each task's test accuracy, (d) the
review outcomes. The JSON holds the numbers quoted in the README.
"""

import argparse
import json
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


def run_experiment(run_dir: Path, overrides: list[str]) -> float:
    """Runs the experiment afresh into `run_dir` (dl.analysis.launch); returns its wall seconds."""
    cmd = [sys.executable, "-m", "dl.run", "experiment=two_task_stunner", "logger=disabled"]
    cmd += ["sim.progress=false", f"hydra.run.dir={run_dir}", *overrides]
    print(" ".join(cmd), flush=True)
    return run_checked(cmd, run_dir, ROOT, force=True)["wall_s"]


def summarize(ov: dict, rows: list[dict], wall_s: float | None) -> dict:
    names, t = ov["names"], np.asarray(ov["times_s"])
    known = np.asarray(ov["known_fraction_online"])
    parts, ever = np.asarray(ov["participants"]), np.asarray(ov["ever_chose"])
    rev, last = ov["review"], rows[-1]
    out = {"wall_s": wall_s, "virtual_s": last["virtual_time_s"], "tasks": {}}
    for j, nm in enumerate(names):
        out["tasks"][nm] = {
            "abusive": rev["abusive"][j],
            "approved": rev["approved"][j],
            "approvals": rev["approvals"][j],
            "votes": rev["voted"][j],
            "decided_s": rev["decided_s"][j],
            "known_50pct_s": first_time(t, known[:, j], 0.5),
            "known_90pct_s": first_time(t, known[:, j], 0.9),
            "known_final": float(known[-1, j]),
            "participants_mean": float(parts[t >= rev["decided_s"][j], j].mean())
            if (t >= rev["decided_s"][j]).any()
            else 0.0,
            "ever_chose": int(ever[-1, j]),
            "feasible_fraction": ov["feasible_fraction"][j],
            "final_accuracy": last.get(f"{nm}/test_accuracy"),
            "energy_kj": (last.get(f"{nm}/energy_j") or 0.0) / 1e3,
        }
    out["energy_total_kj"] = last["energy_j"] / 1e3
    out["online_mean"] = float(np.mean(ov["online"]))
    out["overlay_messages_per_node"] = ov["messages_per_node"]
    return out


def plot(ov: dict, rows: list[dict], summary: dict, path: Path) -> None:
    names, th = ov["names"], np.asarray(ov["times_s"]) / 3600
    known, parts = np.asarray(ov["known_fraction_online"]), np.asarray(ov["participants"])
    fig, ax = plt.subplots(2, 2, figsize=(12, 8))
    for j, nm in enumerate(names):
        style = "--" if ov["review"]["abusive"][j] else "-"
        ax[0, 0].plot(th, known[:, j], style, label=nm)
        ax[0, 1].plot(th, parts[:, j], style, label=nm)
        acc = [
            (r["virtual_time_s"] / 3600, r.get(f"{nm}/test_accuracy"))
            for r in rows
            if r.get(f"{nm}/approved")  # from the verdict on (before: the initial model)
        ]
        acc = [(x, y) for x, y in acc if y is not None]
        if acc:
            ax[1, 0].plot(*zip(*acc, strict=True), "o-", label=nm)
    ax[0, 1].plot(th, ov["online"], ":", color="gray", label="online nodes")
    ax[0, 0].set(title="(a) online nodes that know the task", ylabel="fraction", ylim=(-0.02, 1.02))
    ax[0, 1].set(title="(b) participants (online, training the task)", ylabel="nodes")
    ax[1, 0].set(title="(c) test accuracy", ylabel="accuracy", ylim=(0, 1))
    for a in (ax[0, 0], ax[0, 1], ax[1, 0]):
        a.set_xlabel("virtual time (h)")
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    ax[1, 1].axis("off")
    cells = [
        [
            nm,
            "abusive" if s["abusive"] else "benign",
            f"{s['approvals']}/{s['votes']}",
            "approved" if s["approved"] else "rejected",
            str(s["ever_chose"]),
            "-" if s["final_accuracy"] is None else f"{s['final_accuracy']:.3f}",
        ]
        for nm, s in summary["tasks"].items()
    ]
    table = ax[1, 1].table(
        cells,
        colLabels=["task", "truth", "approve/votes", "verdict", "nodes chose", "final acc"],
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.6)
    ax[1, 1].set_title("(d) review outcomes (k = 3 of m = 5)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "results/two_task.png")
    ap.add_argument("--json", type=Path, default=ROOT / "results/two_task.json")
    args, overrides = ap.parse_known_args()
    wall = None
    run_dir = args.run_dir
    if run_dir is None:
        run_dir = ROOT / "results/runs/two_task"
        wall = run_experiment(run_dir, overrides)
    ov = json.loads((run_dir / "overlay.json").read_text())
    rows = read_metrics(run_dir / "metrics.jsonl")
    summary = summarize(ov, rows, wall)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(ov, rows, summary, args.out)
    args.json.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
