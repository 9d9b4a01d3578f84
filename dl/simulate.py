"""The host loop: build a simulation from a config, run it chunk by chunk in virtual time,
evaluate and log between chunks. The only Python loop is over chunks (DESIGN.md)."""

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from dl.algorithms.fedavg import FedAvgSpec, init_fedavg, make_fedavg_chunk
from dl.build import build, server_opt_spec
from dl.errors import ConfigError, DLError
from dl.logging.metrics import MetricsLogger
from dl.train.evaluate import make_evaluate
from dl.train.mapping import resolve_strategy

ALGORITHMS = ("fedavg",)


def _fedavg_spec(alg: dict) -> FedAvgSpec:
    keys = {"clients_per_round", "overcommit", "idle_wait_s"}
    extra = set(alg) - keys - {"name", "server_opt"}
    if extra:
        raise ConfigError(f"unknown keys in algorithm (fedavg): {sorted(extra)}")
    return FedAvgSpec(**{k: alg[k] for k in keys if k in alg}, server_opt=server_opt_spec(alg))


def simulate(cfg: dict, run_dir: Path) -> dict:
    """Runs the simulation `cfg` (a resolved plain dict) and writes outputs under `run_dir`.

    Returns the summary (final metrics), also written to `run_dir/summary.json`.
    """
    alg = cfg["algorithm"]
    if alg["name"] not in ALGORITHMS:
        raise ConfigError(
            f"unknown algorithm '{alg['name']}' (choose from: {', '.join(ALGORITHMS)})"
        )
    sim = cfg["sim"]
    duration, every = float(sim["duration_s"]), float(sim["eval_every_s"])
    if duration <= 0 or every <= 0:
        raise ConfigError("sim.duration_s and sim.eval_every_s must be > 0")
    b = build(cfg)
    strategy = resolve_strategy(sim["node_map"], cfg["task"]["model"])
    spec = _fedavg_spec(alg)
    chunk = make_fedavg_chunk(b.apply, b.train, spec, b.env, b.model_bytes, strategy)
    evaluate = make_evaluate(b.apply, b.dataset.x_test, b.dataset.y_test, sim["eval_batch"])
    state = init_fedavg(b.params, spec)
    key = jax.random.key(cfg["seed"])
    max_rounds = sim.get("max_rounds") or np.iinfo(np.int32).max

    logger = MetricsLogger(run_dir, cfg["logger"], cfg, cfg.get("name", "run"))
    totals = {"bytes_up": 0.0, "bytes_down": 0.0}
    t0 = time.perf_counter()

    def record() -> dict:
        acc, loss = evaluate(state.params)
        if not np.isfinite(float(loss)):
            raise DLError(
                f"test loss became {float(loss)} at virtual time "
                f"{float(state.clock):.0f} s (diverged; lower task.train.lr)"
            )
        row = {
            "virtual_time_s": float(state.clock),
            "round": int(state.round),
            "test_accuracy": float(acc),
            "test_loss": float(loss),
            "train_loss": float(state.train_loss),
            "bytes_up": totals["bytes_up"],
            "bytes_down": totals["bytes_down"],
            "clients_last_round": int(state.clients),
            "wall_time_s": time.perf_counter() - t0,
        }
        logger.log(row)
        return row

    row = record()
    bar = tqdm(
        total=duration,
        desc=cfg.get("name", "sim"),
        disable=not sim["progress"],
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} virtual s "
        "[{elapsed}<{remaining}{postfix}]",
    )
    try:
        target = every
        while float(state.clock) < duration and int(state.round) < max_rounds:
            before = float(state.clock)
            state = chunk(
                state,
                key,
                jnp.float32(min(target, duration)),
                jnp.int32(max_rounds - int(state.round)),
            )
            totals["bytes_up"] += float(state.bytes_up)
            totals["bytes_down"] += float(state.bytes_down)
            state = state.replace(
                bytes_up=jnp.zeros_like(state.bytes_up), bytes_down=jnp.zeros_like(state.bytes_down)
            )
            while target <= float(state.clock):
                target += every
            row = record()
            bar.update(min(float(state.clock), duration) - min(before, duration))
            bar.set_postfix(acc=f"{row['test_accuracy']:.3f}", rnd=row["round"])
    finally:
        bar.close()
    summary = {
        **row,
        "final_test_accuracy": row["test_accuracy"],
        "strategy": strategy,
        "num_params": int(sum(p.size for p in jax.tree.leaves(b.params))),
        "model_bytes": b.model_bytes,
    }
    logger.close(summary)
    return summary
