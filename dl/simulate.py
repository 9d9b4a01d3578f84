"""The host loop: build a simulation from a config, run it chunk by chunk in virtual time,
evaluate and log between chunks. The only Python loop is over chunks (DESIGN.md)."""

import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dl.algorithms.base import get_algorithm
from dl.build import build
from dl.config_schema import validate
from dl.errors import ConfigError, DLError
from dl.io.checkpoint import Checkpointer, StopSignals
from dl.io.metrics import MetricsLogger
from dl.loop import Lane, Schedule, run_loop
from dl.sharding import barrier, is_writer, shard_nodes
from dl.simulate_multi import simulate_multitask
from dl.traces.availability import is_online
from dl.train.evaluate import make_evaluate, make_node_eval, make_node_evaluate
from dl.train.mapping import resolve_strategy


def simulate(cfg: dict, run_dir: Path) -> dict:
    """Runs the simulation `cfg` (a resolved plain dict) and writes outputs under `run_dir`.

    Returns the summary (final metrics), also written to `run_dir/summary.json` (by process 0
    only in a multi-process run, `dl.sharding`). A config with a `tasks:` mapping runs several
    tasks on one population (`dl.simulate_multi`).
    """
    validate(cfg)
    if cfg.get("tasks"):
        return simulate_multitask(cfg, Path(run_dir))
    sim = cfg["sim"]
    schedule = Schedule.of(sim)
    algorithm = get_algorithm(cfg["algorithm"].get("name"))
    b = build(cfg)
    strategy = resolve_strategy(
        sim["node_map"], cfg["task"]["model"], chunk=sim.get("node_map_chunk")
    )
    runner = algorithm.make(cfg, b, strategy)
    train = bool(sim.get("train", True))
    evaluate = make_evaluate(b.apply, b.dataset.x_test, b.dataset.y_test, sim["eval_batch"])
    n = int(b.env.counts.shape[0])  # padded to a multiple of the device count
    n_real = b.n_real
    lane = Lane(runner, shard_nodes(runner.init, b.mesh, n), jax.random.key(cfg["seed"]))
    lane.totals = {"bytes_up": 0.0, "bytes_down": 0.0, "energy_j": 0.0}
    frac = jax.jit(lambda t: is_online(b.availability, t)[:n_real].mean())

    run_dir, ckpt, resumed = open_checkpoints(cfg, Path(run_dir))
    target, rows = schedule.every_s, 0
    if resumed:
        state, host = ckpt.restore(lane.state)
        lane.state = shard_nodes(state, b.mesh, n)
        lane.totals, target, rows = host["totals"], host["target"], host["rows"]
        if is_writer():
            truncate_lines(run_dir / "metrics.jsonl", rows)
        barrier("dl-restored")  # process 0 saves (and prunes) only after all have restored
    logger = MetricsLogger(
        run_dir, cfg["logger"], cfg, cfg.get("name", "run"), append=resumed, write=is_writer()
    )
    t0 = time.perf_counter()

    node_eval = None
    if runner.node_params is not None and train:
        node_evaluate = make_node_evaluate(b.apply, b.dataset, sim, cfg["seed"])
        k = int(sim.get("eval_nodes", 10))
        node_eval = make_node_eval(node_evaluate, n_real, k, cfg["seed"])

    def record(now: float = 0.0) -> dict:
        clock = lane.clock()
        row = {"virtual_time_s": clock}
        if train:
            row |= model_metrics(runner, lane.state, evaluate, node_eval)
            if not np.isfinite(row["test_loss"]):
                raise DLError(
                    f"test loss became {row['test_loss']} at virtual time {clock:.0f} s "
                    "(diverged; lower task.train.lr)"
                )
        row |= runner.gauges(lane.state)
        row |= dict(lane.totals)
        row |= {
            "online_fraction": float(frac(jnp.float32(clock))),
            "num_nodes": n_real,
            "wall_time_s": time.perf_counter() - t0,
        }
        logger.log(row)
        nonlocal rows
        rows += 1
        return row

    bar = tqdm(
        total=schedule.duration_s,
        desc=cfg.get("name", "sim"),
        disable=not sim["progress"],
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} virtual s "
        "[{elapsed}<{remaining}{postfix}]",
    )
    shown = [min(lane.clock(), schedule.duration_s)]

    def progress(now: float) -> None:
        bar.update(min(now, schedule.duration_s) - shown[0])
        shown[0] = min(now, schedule.duration_s)

    def after_row(clock: float, row: dict, target: float) -> None:
        if train:
            bar.set_postfix(acc=f"{row['test_accuracy']:.3f}", rnd=row["round"])
        if ckpt is not None and (ckpt.due(clock) or stop.signum is not None):
            host = {"totals": lane.totals, "target": target, "rows": rows, "clock": clock}
            ckpt.save(rows, lane.state, host, clock)
        if stop.signum is not None:
            what = (
                f"checkpoint saved; resume with resume={run_dir}"
                if ckpt is not None
                else "no checkpoint (ckpt.every_s is null)"
            )
            print(f"{stop.name}: stopped at virtual time {clock:.0f} s, {what}", file=sys.stderr)

    max_rounds = sim.get("max_rounds") or np.iinfo(np.int32).max
    summary: dict | None = None
    stop = StopSignals()
    try:
        stop.__enter__()
        row = record() if not resumed else {"round": runner.gauges(lane.state)["round"]}
        row = run_loop([lane], schedule, record, row, target, stop, max_rounds, after_row, progress)
        summary = {
            **row,
            **stop.status(),
            "strategy": strategy,
            "run_dir": str(run_dir),
            "model_bytes": b.model_bytes,
            "num_params": int(sum(p.size for p in jax.tree.leaves(b.params))),
        }
    finally:
        stop.__exit__()
        bar.close()
        logger.close(summary)
        if ckpt is not None:
            ckpt.close()
    return summary


def model_metrics(runner, state, evaluate, node_eval, nodes: bool = True) -> dict:
    """Test metrics of a runner's models: the node-model sample (when `node_eval` is set and
    `nodes`) and the server model; `test_accuracy` / `test_loss` are the server's, or the node
    mean for serverless algorithms."""
    row: dict = {}
    if node_eval is not None and nodes:
        row |= node_eval(runner.node_params(state))
    server = runner.params(state)
    if server is not None:
        acc, loss = evaluate(server)
        return row | {"test_accuracy": float(acc), "test_loss": float(loss)}
    return row | {"test_accuracy": row["node_accuracy_mean"], "test_loss": row["node_loss_mean"]}


def open_checkpoints(cfg: dict, run_dir: Path) -> tuple[Path, Checkpointer | None, bool]:
    """(output dir, checkpointer or None, whether to resume). `resume=<dir>` continues the run
    whose outputs are in <dir> (and writes there); `resume=true` continues in `run_dir`."""
    ck = cfg.get("ckpt") or {}
    resume = cfg.get("resume", False)
    if isinstance(resume, str) and resume not in ("", "false", "False"):
        run_dir = Path(resume).expanduser()
        if not run_dir.is_dir():
            raise ConfigError(f"resume: run directory {run_dir} does not exist")
        resume = True
    resume = bool(resume)
    if ck.get("every_s") is None and not resume:
        return run_dir, None, False
    directory = Path(ck.get("dir") or run_dir / "checkpoints")
    ckpt = Checkpointer(directory, ck.get("every_s"), int(ck.get("keep", 2)), write=is_writer())
    if resume and ckpt.latest() is None:
        ckpt.close()
        raise ConfigError(f"resume: no complete checkpoint in {directory}")
    return run_dir, ckpt, resume


def truncate_lines(path: Path, rows: int) -> None:
    """Keeps the first `rows` lines of `path` (rows logged before the checkpoint)."""
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    if len(lines) < rows:
        raise ConfigError(f"resume: {path} has {len(lines)} rows, checkpoint expects {rows}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines[:rows]))
    os.replace(tmp, path)
