"""Several tasks on one population, driven by the overlay (DESIGN.md semantics 5).

A config with a `tasks:` mapping runs here: every trainable task is built on the shared
population; the overlay (`dl.overlay.evolve`) runs first over the whole horizon (it depends on the
trace only); then each task trains where a node is online AND assigned to it. One host loop
advances all tasks and logs per-task keys (`<task>/test_accuracy`, ...).
Notes: docs/NOTES.md#dlmultitaskpy
"""

import copy
import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dl import rng
from dl.algorithms.base import Runner, make_runner
from dl.arrays import floats
from dl.build import (
    Built,
    build,
    build_availability,
    build_profiles,
    horizon_s,
    with_availability,
)
from dl.data.root import resolve_data_root
from dl.errors import ConfigError
from dl.models.flops import model_flops_per_example
from dl.overlay import choice as ch
from dl.overlay.assignment import split_availability
from dl.overlay.evolve import OverlayResult, run_overlay, spec_from_config
from dl.overlay.tasks import complete_spec, make_table, session_cost
from dl.sharding import shard_nodes
from dl.train.evaluate import make_evaluate, make_node_evaluate
from dl.train.mapping import resolve_strategy

TASK_KEYS = ("spec", "task", "algorithm", "server", "profiles")


@dataclass
class TaskRun:
    """One trainable task: its config, built pieces, runner and evaluators."""

    name: str
    index: int  # column in the overlay's task table
    cfg: dict
    built: Built
    runner: Runner | None = None
    strategy: str = ""
    evaluate: Any = None
    node_eval: Any = None  # (stacked params, idx [k]) -> (acc [k], loss [k])
    state: Any = None
    key: Any = None


def task_configs(cfg: dict) -> tuple[list[str], dict[str, dict]]:
    """(all task names in order, {name: full single-task config} for the trainable ones)."""
    tasks = cfg.get("tasks") or {}
    if not isinstance(tasks, dict) or not tasks:
        raise ConfigError("tasks must be a non-empty mapping name -> {spec, task, algorithm, ...}")
    if cfg.get("resume") not in (False, None, "", "false") or (cfg.get("ckpt") or {}).get(
        "every_s"
    ):
        raise ConfigError("several tasks (tasks: ...) do not support checkpoints/resume yet")
    names, trainable = list(tasks), {}
    for name, t in tasks.items():
        t = t or {}
        extra = set(t) - set(TASK_KEYS)
        if extra:
            raise ConfigError(f"unknown keys in tasks.{name}: {sorted(extra)} ({TASK_KEYS})")
        has = [k in t and t[k] is not None for k in ("task", "algorithm")]
        if any(has) and not all(has):
            raise ConfigError(f"tasks.{name} needs both task and algorithm (or neither)")
        complete_spec(name, t.get("spec"), {"model_mb": 1.0} if all(has) else None)  # fail early
        if not any(has):
            continue
        c = copy.deepcopy({k: v for k, v in cfg.items() if k not in ("tasks", "discovery")})
        c["task"], c["algorithm"] = t["task"], t["algorithm"]
        c["server"] = t.get("server") or cfg["server"]
        profiles = {**c["trace"]["profiles"], **(t.get("profiles") or {})}
        c["trace"] = {**c["trace"], "profiles": profiles}
        c["name"] = name
        trainable[name] = c
    return names, trainable


def _record(cfg: dict, name: str, run: TaskRun | None, base, n: int) -> tuple[dict, Any, Any]:
    """(completed spec, session time [N], session energy [N]) of one task."""
    spec = (cfg["tasks"][name] or {}).get("spec")
    if run is None:  # overlay-only: the spec states the model; base device profiles
        s = complete_spec(name, spec)
        e = cfg.get("energy") or {}
        t, j = session_cost(base, s["model_mb"] * 1e6, s["batch_size"], s["local_steps"], e)
        return s, t, j
    b, tc = run.built, run.cfg["task"]
    try:
        opts = tc.get("model_options") or {}
        flops = model_flops_per_example(
            tc["model"], b.dataset.input_shape, b.dataset.num_classes, **opts
        )
    except NotImplementedError:
        flops = 0
    s = complete_spec(name, spec, {"model_mb": b.model_bytes / 1e6, "flops_per_sample": flops})
    e = b.energy
    return s, e.t_client[:n], (e.power_w * e.t_comp + e.e_down_j + e.e_up_j)[:n]


def setup(cfg: dict) -> tuple[list[str], list[TaskRun], OverlayResult, dict]:
    """Builds every task, runs the overlay, moves each task onto its own availability."""
    sim = cfg["sim"]
    n = int(sim["num_nodes"])
    names, confs = task_configs(cfg)
    root = resolve_data_root(cfg["data"]["root"])
    trace_av = build_availability(cfg, n, root)
    runs = [TaskRun(nm, names.index(nm), c, build(c, trace_av)) for nm, c in confs.items()]
    by_name = {r.name: r for r in runs}
    base = build_profiles(cfg, n, root)
    specs, t_cols, e_cols = [], [], []
    for nm in names:
        s, t, j = _record(cfg, nm, by_name.get(nm), base, n)
        specs.append(s)
        t_cols.append(t)
        e_cols.append(j)
    table = make_table(names, specs)
    ospec, params, res = spec_from_config(cfg.get("discovery"))
    key = rng.key(cfg["seed"], rng.OVERLAY)
    k_res, k_ov = jax.random.split(key)
    mem, budget = ch.node_resources(
        k_res, n, list(res.get("memory_mb", [512.0])), tuple(res.get("budget_j", (1e3, 1e3)))
    )
    t_sess, e_sess = jnp.stack(t_cols, axis=1), jnp.stack(e_cols, axis=1)
    feasible = ch.static_feasible(mem, table.memory_mb, t_sess, table.deadline_s, e_sess, budget)
    rounds = math.ceil(float(sim["duration_s"]) / ospec.period_s) + 1
    ov = run_overlay(k_ov, ospec, table, trace_av, rounds, feasible, e_sess, params)
    avs = split_availability(trace_av, ov.assign, ov.period_s, len(names), horizon_s(cfg))
    for r in runs:
        r.built = with_availability(r.built, avs[r.index])
    info = {
        "table": table,
        "specs": specs,
        "feasible_fraction": np.asarray(feasible).mean(axis=0).tolist(),
    }
    return names, runs, ov, info


def first_rounds(assign: np.ndarray, num_tasks: int) -> np.ndarray:
    """`[N, T]` first round each node was assigned each task (R if never)."""
    r = assign.shape[0]
    out = np.full((assign.shape[1], num_tasks), r, np.int64)
    for j in range(num_tasks):
        hit = assign == j
        out[:, j] = np.where(hit.any(0), hit.argmax(0), r)
    return out


def _node_sampler(evaluate, k: int):
    @jax.jit
    def run(stacked, idx):
        sample = jax.tree.map(lambda p: floats(p[idx]), stacked)
        return jax.lax.map(evaluate, sample)

    return run


def start(runs: list[TaskRun], cfg: dict) -> None:
    """Runners, evaluators, initial states and keys for every trainable task."""
    sim = cfg["sim"]
    for r in runs:
        b = r.built
        r.strategy = resolve_strategy(
            sim["node_map"], r.cfg["task"]["model"], chunk=sim.get("node_map_chunk")
        )
        r.runner = make_runner(r.cfg, b, r.strategy)
        r.evaluate = make_evaluate(b.apply, b.dataset.x_test, b.dataset.y_test, sim["eval_batch"])
        if r.runner.node_params is not None:
            node_evaluate = make_node_evaluate(b.apply, b.dataset, sim, cfg["seed"])
            r.node_eval = _node_sampler(node_evaluate, int(sim.get("eval_nodes", 10)))
        r.state = shard_nodes(r.runner.init, b.mesh, int(b.env.counts.shape[0]))
        r.key = rng.key(cfg["seed"], rng.TASK_BASE + r.index)
