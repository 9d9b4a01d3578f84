"""The host loop for several tasks on one population (`dl.multitask` builds the pieces).

All tasks advance chunk by chunk to the same evaluation times; each row of `metrics.jsonl`
holds the overlay's state at that time and every task's metrics under `<task>/...` keys.
`overlay.json` keeps the overlay's per-round record (knowledge, participants, review) for
`scripts/fig_overlay.py`.
"""

import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from dl import rng
from dl.errors import ConfigError, DLError
from dl.io.checkpoint import StopSignals
from dl.io.metrics import MetricsLogger, write_json_atomic
from dl.loop import Lane, Schedule, run_loop
from dl.multitask import TaskRun, first_rounds, setup, start
from dl.sharding import is_writer


def _overlay_row(names, ov, first, r: int, n: int) -> dict:
    rev = ov.review
    on = max(int(ov.online[r]), 1)
    row = {
        "online_fraction": float(ov.online[r]) / n,
        "overlay/idle_online_fraction": float(ov.online[r] - ov.participants[r].sum()) / on,
    }
    for j, nm in enumerate(names):
        row[f"{nm}/known_fraction"] = float(ov.known_online[r, j]) / on
        row[f"{nm}/participants"] = int(ov.participants[r, j])
        row[f"{nm}/ever_chose"] = int((first[:, j] <= r).sum())
        row[f"{nm}/approved"] = bool(rev.approved[j] and r >= rev.decided_round[j])
    return row


def _task_row(t: TaskRun, first_col: np.ndarray, r: int, perm: np.ndarray, k: int) -> dict:
    st, run, p = t.state, t.runner, f"{t.name}/"
    row = {p + "virtual_time_s": run.clock(st)}
    server = run.params(st)
    if t.node_eval is not None:
        joined = perm[first_col[perm] <= r]
        if joined.size:
            idx = np.resize(joined, k)
            acc, loss = (np.asarray(a) for a in t.node_eval(run.node_params(st), idx))
            row[p + "node_accuracy_mean"] = float(acc.mean())
            row[p + "node_accuracy_p10"] = float(np.quantile(acc, 0.1))
            row[p + "node_accuracy_p90"] = float(np.quantile(acc, 0.9))
            row[p + "node_loss_mean"] = float(loss.mean())
    if server is not None:
        acc, loss = t.evaluate(server)
        row[p + "test_accuracy"], row[p + "test_loss"] = float(acc), float(loss)
    elif p + "node_accuracy_mean" in row:
        row[p + "test_accuracy"] = row[p + "node_accuracy_mean"]
        row[p + "test_loss"] = row[p + "node_loss_mean"]
    loss = row.get(p + "test_loss")
    if loss is not None and not np.isfinite(loss):
        raise DLError(f"task {t.name}: test loss became {loss} (diverged; lower its train.lr)")
    row |= {p + k_: v for k_, v in run.gauges(st).items() if k_ != "staleness_hist"}
    return row


def simulate_multitask(cfg: dict, run_dir: Path) -> dict:
    """Runs the several-task config `cfg`; writes metrics.jsonl, overlay.json, summary.json."""
    sim = cfg["sim"]
    schedule = Schedule.of(sim)
    if (cfg.get("ckpt") or {}).get("every_s") is not None or cfg.get("resume") not in (None, False):
        raise ConfigError(
            "ckpt.every_s / resume: several-task runs (a tasks: mapping) do not checkpoint"
        )
    t_wall = time.perf_counter()
    names, runs, ov, info = setup(cfg)
    start(runs, cfg)
    setup_s = time.perf_counter() - t_wall
    n = int(sim["num_nodes"])
    first = first_rounds(ov.assign, len(names))
    perm = rng.numpy_rng(cfg["seed"], rng.EVAL_NODES).permutation(n)
    k = int(sim.get("eval_nodes", 10))
    lanes = {t.name: Lane(t.runner, t.state, t.key) for t in runs}
    run_dir = Path(run_dir)
    logger = MetricsLogger(run_dir, cfg["logger"], cfg, cfg.get("name", "tasks"), write=is_writer())
    rows = 0

    def record(now: float) -> dict:
        nonlocal rows
        r = min(int(now // ov.period_s), len(ov.times) - 1)
        row = {"virtual_time_s": now} | _overlay_row(names, ov, first, r, n)
        energy = 0.0
        for t in runs:
            t.state = lanes[t.name].state
            row |= _task_row(t, first[:, t.index], r, perm, k)
            tot = lanes[t.name].totals
            row |= {f"{t.name}/{k_}": v for k_, v in tot.items()}
            energy += tot["energy_j"]
        row |= {"energy_j": energy, "wall_time_s": time.perf_counter() - t_wall}
        logger.log(row)
        rows += 1
        return row

    bar = tqdm(
        total=schedule.duration_s, desc=cfg.get("name", "tasks"), disable=not sim["progress"]
    )
    shown = [0.0]

    def progress(now: float) -> None:
        bar.update(now - shown[0])
        shown[0] = now

    summary = None
    signals = StopSignals()  # SIGTERM/SIGINT: stop after the current evaluation, flushing outputs
    try:
        signals.__enter__()
        row = run_loop(
            list(lanes.values()),
            schedule,
            record,
            record(0.0),
            schedule.every_s,
            signals,
            progress=progress,
            at_target=True,
        )
        now = row["virtual_time_s"]
        for t in runs:
            t.state = lanes[t.name].state
        summary = _summary(names, runs, ov, info, row, run_dir, setup_s)
        summary |= signals.status()
        if signals.signum is not None:
            print(
                f"{signals.name}: stopped at virtual time {now:.0f} s (several-task runs do not "
                "checkpoint)",
                file=sys.stderr,
            )
        if is_writer():
            write_json_atomic(run_dir / "overlay.json", overlay_record(names, ov, first, info))
    finally:
        signals.__exit__()
        bar.close()
        logger.close(summary)
    return summary


def overlay_record(names, ov, first, info) -> dict:
    """The overlay's per-round series and review outcome, JSON-ready."""
    rev = ov.review
    on = np.maximum(ov.online, 1)[:, None]
    r = np.arange(len(ov.times))
    ever = np.stack([np.searchsorted(np.sort(f), r, side="right") for f in first.T], axis=1)
    return {
        "names": list(names),
        "period_s": ov.period_s,
        "times_s": ov.times.tolist(),
        "online": ov.online.tolist(),
        "known_fraction_online": (ov.known_online / on).tolist(),
        "participants": ov.participants.tolist(),
        "ever_chose": ever.tolist(),
        "review": {
            "abusive": np.asarray(info["table"].abusive).tolist(),
            "approved": rev.approved.tolist(),
            "approvals": rev.approvals.tolist(),
            "voted": rev.voted.tolist(),
            "decided_s": (rev.decided_round * ov.period_s).tolist(),
        },
        "feasible_fraction": info["feasible_fraction"],
        "specs": info["specs"],
        "messages_per_node": ov.messages_per_node,
    }


def _summary(names, runs, ov, info, row, run_dir, setup_s) -> dict:
    rev = ov.review
    table = info["table"]
    out = {k: v for k, v in row.items()}
    out |= {
        "run_dir": str(run_dir),
        "tasks": list(names),
        "setup_s": setup_s,
        "round": max((int(row.get(f"{t.name}/round", 0)) for t in runs), default=0),
        "overlay_messages_per_node": ov.messages_per_node,
    }
    for j, nm in enumerate(names):
        abusive = bool(np.asarray(table.abusive)[j])
        out[f"{nm}/abusive"] = abusive
        out[f"{nm}/review"] = (
            f"{'approved' if rev.approved[j] else 'rejected'} "
            f"({int(rev.approvals[j])}/{int(rev.voted[j])} approvals)"
        )
        out[f"{nm}/feasible_fraction"] = info["feasible_fraction"][j]
    for t in runs:
        out[f"{t.name}/strategy"] = t.strategy
        out[f"{t.name}/model_bytes"] = t.built.model_bytes
        out[f"{t.name}/num_params"] = int(sum(p.size for p in jax.tree.leaves(t.built.params)))
    return out
