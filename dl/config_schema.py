"""The config schema: one table of key -> type and range, checked right after composition by
every entry point (`dl.run`, and `dl.simulate.simulate` for scripts and tests).

A typed schema module rather than Hydra structured configs: the groups' options carry different
keys (five algorithms, five traces, seven servers, several-task configs under `tasks.<name>.`),
so dataclasses in the ConfigStore would need one class per option plus unions, and OmegaConf's
own type errors are multi-line and name no range. Here a bad value stops with one line
`<key>=<value>: <why> (allowed: <range>)`. Keys absent from the composed config are not
checked (a group option that lacks them); unknown keys are rejected by `check_keys`.
"""

import math
from dataclasses import dataclass
from typing import Any

from dl.errors import ConfigError


@dataclass(frozen=True)
class Num:
    """An int (`integer=True`) or a finite float in [lo, hi]; `lo_open`/`hi_open` exclude ends."""

    integer: bool = False
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    null: bool = False

    def allowed(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        lo = "-inf" if self.lo is None else _fmt(self.lo)
        hi = "inf" if self.hi is None else _fmt(self.hi)
        rng = f"{'(' if self.lo_open or self.lo is None else '['}{lo}, {hi}"
        rng += ")" if self.hi_open or self.hi is None else "]"
        return f"{kind} in {rng}" + (" or null" if self.null else "")

    def why(self, v: Any) -> str | None:
        if v is None:
            return None if self.null else "must be set"
        if isinstance(v, bool) or not isinstance(v, int | float):
            return f"not {'an integer' if self.integer else 'a number'}"
        if self.integer and not float(v).is_integer():
            return "not an integer"
        if not math.isfinite(v):
            return "not finite"
        if self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo)):
            return "out of range"
        if self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi)):
            return "out of range"
        return None


@dataclass(frozen=True)
class Choice:
    options: tuple
    null: bool = False

    def allowed(self) -> str:
        return ", ".join(str(o) for o in self.options) + (", null" if self.null else "")

    def why(self, v: Any) -> str | None:
        if v is None and self.null:
            return None
        ok = any(type(v) is type(o) and v == o for o in self.options)
        return None if ok else "not one of the options"


@dataclass(frozen=True)
class Str:
    null: bool = True

    def allowed(self) -> str:
        return "a string" + (" or null" if self.null else "")

    def why(self, v: Any) -> str | None:
        if v is None:
            return None if self.null else "must be set"
        return None if isinstance(v, str) else "not a string"


@dataclass(frozen=True)
class Intervals:
    """A list of [start_s, end_s] pairs with 0 <= start < end (server outages)."""

    def allowed(self) -> str:
        return "a list of [start_s, end_s] pairs with 0 <= start < end, e.g. [[600,1800]]"

    def why(self, v: Any) -> str | None:
        if not isinstance(v, list | tuple):
            return "not a list"
        for pair in v:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                return f"{_show(pair)} is not a [start_s, end_s] pair"
            if any(Num().why(x) for x in pair):
                return f"{_show(pair)} holds a non-number"
            if not 0 <= pair[0] < pair[1]:
                return f"{_show(pair)} needs 0 <= start < end"
        return None


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else str(x)


def _show(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "[" + ",".join(_show(x) for x in v) + "]"
    return "null" if v is None else str(v)


POS = Num(lo=0, lo_open=True)  # > 0
NONNEG = Num(lo=0)
FRAC = Num(lo=0, hi=1)
UNIT = Num(lo=0, hi=1, lo_open=True)  # (0, 1]
COUNT = Num(integer=True, lo=1)
BOOL = Choice((True, False))
STALENESS = Choice(("constant", "poly", "hinge"))
OPT = Choice(("sgd", "momentum", "adam"))

SCHEMA: dict[str, Any] = {
    "seed": Num(integer=True, lo=0, hi=2**32 - 1),
    "name": Str(null=False),
    "ckpt.every_s": Num(lo=0, lo_open=True, null=True),
    "ckpt.dir": Str(),
    "ckpt.keep": COUNT,
    "dist.enabled": BOOL,
    "dist.num_processes": Num(integer=True, lo=1, null=True),
    "dist.process_id": Num(integer=True, lo=0, null=True),
    "data.root": Str(),
    "sim.num_nodes": COUNT,
    "sim.duration_s": POS,
    "sim.max_rounds": Num(integer=True, lo=1, null=True),
    "sim.eval_every_s": POS,
    "sim.node_map": Choice(("auto", "vmap", "map", "chunked")),
    "sim.node_map_chunk": COUNT,
    "sim.eval_batch": COUNT,
    "sim.eval_nodes": COUNT,
    "sim.eval_node_examples": Num(integer=True, lo=0),
    "sim.compile_cache": Str(null=True),
    "sim.progress": BOOL,
    "sim.node_dtype": Choice(("float32", "bfloat16")),
    "sim.shard": Choice(("auto", True, False)),
    "sim.train": BOOL,
    "logger.kind": Choice(("wandb", "disabled")),
    "logger.mode": Choice(("offline", "online", "disabled")),
    "logger.project": Str(null=False),
    "task.partition.scheme": Choice(("iid", "dirichlet", "shards", "natural", "single_class")),
    "task.partition.alpha": POS,
    "task.partition.shards_per_node": COUNT,
    "task.partition.max_examples": Num(integer=True, lo=1, null=True),
    "task.train.batch_size": COUNT,
    "task.train.local_steps": COUNT,
    "task.train.lr": POS,
    "task.train.optimizer": OPT,
    "task.train.momentum": Num(lo=0, hi=1, hi_open=True),
    "task.train.weight_decay": NONNEG,
    "task.train.lr_schedule": Choice(("constant", "pegasos")),
    "algorithm.clients_per_round": COUNT,
    "algorithm.overcommit": Num(lo=1),
    "algorithm.idle_wait_s": POS,
    "algorithm.upload_frac": UNIT,
    "algorithm.server_opt.name": OPT,
    "algorithm.server_opt.lr": POS,
    "algorithm.server_opt.momentum": Num(lo=0, hi=1, hi_open=True),
    "algorithm.server_opt.b1": Num(lo=0, hi=1, hi_open=True),
    "algorithm.server_opt.b2": Num(lo=0, hi=1, hi_open=True),
    "algorithm.server_opt.eps": POS,
    "algorithm.alpha": UNIT,
    "algorithm.staleness": STALENESS,
    "algorithm.stale_a": NONNEG,
    "algorithm.stale_b": NONNEG,
    "algorithm.max_staleness": Num(integer=True, lo=-1),
    "algorithm.concurrency": COUNT,
    "algorithm.quantum_s": POS,
    "algorithm.max_arrivals": COUNT,
    "algorithm.hist_bins": COUNT,
    "algorithm.buffer_k": COUNT,
    "algorithm.server_lr": POS,
    "algorithm.nu": NONNEG,
    "algorithm.lam_max": UNIT,
    "algorithm.age_cap_steps": NONNEG,
    "algorithm.period_s": POS,
    "algorithm.max_trainings": COUNT,
    "algorithm.merge": Choice(("age", "none", "limited")),
    "algorithm.merge_limit": NONNEG,
    "algorithm.age_rule": Choice(("max", "weighted")),
    "algorithm.sample_frac": UNIT,
    "algorithm.partitions": COUNT,
    "algorithm.topology": Choice(("uniform", "kregular", "kregular_dynamic", "cyclon")),
    "algorithm.degree": COUNT,
    "algorithm.shuffle_len": COUNT,
    "algorithm.queue": Choice(("last", "all")),
    "algorithm.flow": Choice(("proactive", "randomized")),
    "algorithm.capacity": COUNT,
    "algorithm.reactivity": COUNT,
    "algorithm.max_reactive": Num(integer=True, lo=0),
    "algorithm.inflight_cap": Num(integer=True, lo=0),
    "algorithm.inbox_cap": Num(integer=True, lo=0),
    "server.kind": Choice(("always", "never", "periodic", "markov", "intervals")),
    "server.upload_policy": Choice(("lost", "retry")),
    "server.outages": Intervals(),
    "server.period_s": POS,
    "server.down_fraction": FRAC,
    "server.phase_s": NONNEG,
    "server.mean_up_s": POS,
    "server.mean_down_s": POS,
    "energy.radio": Choice(("wifi", "lte", "3g")),
    "energy.bursts_per_transfer": Num(lo=0),
    "energy.power_scale": NONNEG,
    "trace.availability_options.p_online": FRAC,
    "trace.availability_options.period_s": POS,
    "trace.availability_options.mean_online": FRAC,
    "trace.availability_options.amplitude": FRAC,
    "trace.availability_options.threshold": Choice((100, 80)),
    "trace.availability_options.window_s": Num(lo=1, null=True),
    "trace.availability_options.min_session_s": NONNEG,
    "trace.profiles.kind": Choice(("constant", "flash")),
    "trace.profiles.ms_per_sample": POS,
    "trace.profiles.up_kbps": POS,
    "trace.profiles.down_kbps": POS,
    "trace.profiles.power_w": NONNEG,
    "trace.profiles.ref_ms_per_sample": POS,
    "trace.profiles.ref_score": Num(lo=0, lo_open=True, null=True),
}

# Keys a config may add with `+key=value` although no default declares them.
OPTIONAL = ("algorithm.inflight_cap", "algorithm.inbox_cap")
# Free-form mappings: any key may be added below them.
FREE_FORM = ("task.dataset_options", "task.model_options", "logger.tags")


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _leaves(v, key + ".")
        else:
            yield key, v


def schema_key(key: str) -> str:
    """`tasks.<name>.task.train.lr` -> `task.train.lr` (several-task configs)."""
    parts = key.split(".")
    if parts[0] == "tasks" and len(parts) > 2 and parts[2] in ("task", "algorithm", "server"):
        return ".".join(parts[2:])
    return key


def validate(cfg: dict) -> None:
    """Checks every key of the resolved config `cfg` that the schema knows; raises ConfigError
    `<key>=<value>: <why> (allowed: ...)` at the first bad one."""
    for key, v in _leaves(cfg):
        spec = SCHEMA.get(schema_key(key))
        if spec is None:
            continue
        why = spec.why(v)
        if why is not None:
            raise ConfigError(f"{key}={_show(v)}: {why} (allowed: {spec.allowed()})")


def has_key(cfg: dict, key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_key(cfg: dict, key: str, value: str) -> None:
    """Rejects an override of `key` that the composed defaults `cfg` do not declare."""
    if has_key(cfg, key) or key in OPTIONAL:
        return
    if any(key.startswith(f + ".") for f in FREE_FORM):
        return
    parent, _, leaf = key.rpartition(".")
    if parent and has_key(cfg, parent):
        node: Any = cfg
        for part in parent.split("."):
            node = node[part]
        if isinstance(node, dict):
            near = ", ".join(sorted(node)) or "none"
            raise ConfigError(f"{key}={value}: unknown key (allowed under {parent}: {near})")
    top = ", ".join(sorted(cfg))
    raise ConfigError(f"{key}={value}: unknown key (allowed top-level keys: {top})")
