"""Task records of the overlay: who published what, what it costs, what it pays.

ALGORITHMS.md §6.3; here a task's id is its index in the table, and each record carries its
ground truth (`abusive`). Configs list tasks under `tasks.<name>.spec`; trainable tasks derive
model size, FLOPs and session costs from the built model, overlay-only tasks state them.
Notes: docs/NOTES.md#dloverlaytaskspy
"""

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array

from dl.devices.energy_env import make_energy_env
from dl.devices.profiles import DeviceProfiles
from dl.errors import ConfigError

SPEC_DEFAULTS: dict[str, Any] = {
    "engineer": 0,  # engineer id (several tasks may share one)
    "publish_s": 0.0,  # when the engineer submits the task for review
    "expiry_s": None,  # null: never expires
    "reward": 1.0,  # pay per completed session (arbitrary units)
    "deadline_s": 600.0,  # a session must end within this many seconds (download+train+upload)
    "abusive": False,  # ground truth (reviewers see it only through their votes)
    "target": 50.0,  # participants the engineer wants (congestion = participants / target)
    "interest": 0.5,  # mean user interest value_i(T) in [0, 1] (per node: uniform in [0, 2x])
    "memory_mb": None,  # null: 16 MB runtime + 4x the model (params, grads, optimizer, inputs)
    "model_mb": None,  # overlay-only tasks: model size; trainable tasks: derived
    "flops_per_sample": None,  # overlay-only tasks; trainable tasks: derived (dl.models.flops)
    "batch_size": 10,  # overlay-only tasks: session shape for the time and energy model
    "local_steps": 10,
}


@struct.dataclass
class TaskTable:
    """One row per task (task axis first)."""

    engineer: Array  # [T] i32 engineer id
    publish_s: Array  # [T] f32 submission time (virtual s)
    expiry_s: Array  # [T] f32 expiry time (inf: never)
    reward: Array  # [T] f32 pay per session
    deadline_s: Array  # [T] f32 longest acceptable session
    abusive: Array  # [T] bool ground truth
    target: Array  # [T] f32 wanted participants
    interest: Array  # [T] f32 mean user interest in [0, 1]
    memory_mb: Array  # [T] f32 memory a node needs to train
    model_bytes: Array  # [T] f32 model size
    flops_per_sample: Array  # [T] f32 forward FLOPs per example
    names: tuple[str, ...] = struct.field(pytree_node=False, default=())

    @property
    def num_tasks(self) -> int:
        return int(self.reward.shape[0])


def complete_spec(name: str, spec: dict | None, derived: dict | None = None) -> dict:
    """The spec with defaults filled in and `derived` values (model_mb, flops) where unset."""
    spec = dict(spec or {})
    extra = set(spec) - set(SPEC_DEFAULTS)
    if extra:
        raise ConfigError(
            f"unknown keys in tasks.{name}.spec: {sorted(extra)} "
            f"(choose from: {', '.join(SPEC_DEFAULTS)})"
        )
    out = {**SPEC_DEFAULTS, **spec}
    for k, v in (derived or {}).items():
        if out.get(k) is None:
            out[k] = v
    if out["model_mb"] is None:
        raise ConfigError(f"tasks.{name}.spec.model_mb is needed for a task without training")
    if out["flops_per_sample"] is None:
        out["flops_per_sample"] = 0.0
    if out["memory_mb"] is None:
        out["memory_mb"] = 16.0 + 4.0 * float(out["model_mb"])
    for k in ("reward", "deadline_s", "target", "model_mb"):
        if not float(out[k]) > 0:
            raise ConfigError(f"tasks.{name}.spec.{k} must be > 0, got {out[k]}")
    if not 0.0 <= float(out["interest"]) <= 1.0:
        raise ConfigError(f"tasks.{name}.spec.interest must be in [0, 1], got {out['interest']}")
    return out


def make_table(names: list[str], specs: list[dict]) -> TaskTable:
    """A TaskTable from completed specs (`complete_spec`), in the given order."""
    if not names:
        raise ConfigError("tasks: at least one task is needed")

    def col(key, dtype=np.float32, fill=None):
        vals = [fill if (s[key] is None and fill is not None) else s[key] for s in specs]
        return jnp.asarray(np.asarray(vals, dtype))

    return TaskTable(
        engineer=col("engineer", np.int32),
        publish_s=col("publish_s"),
        expiry_s=col("expiry_s", fill=math.inf),
        reward=col("reward"),
        deadline_s=col("deadline_s"),
        abusive=col("abusive", bool),
        target=col("target"),
        interest=col("interest"),
        memory_mb=col("memory_mb"),
        model_bytes=jnp.asarray(np.asarray([s["model_mb"] * 1e6 for s in specs], np.float32)),
        flops_per_sample=col("flops_per_sample"),
        names=tuple(names),
    )


def session_cost(
    profiles: DeviceProfiles, model_bytes: float, batch: int, steps: int, energy_cfg: dict
) -> tuple[Array, Array]:
    """Per node (`[N]` s, `[N]` J) of one session: download + train + upload (§4.3, §5)."""
    e = make_energy_env(profiles, int(model_bytes), int(batch), int(steps), energy_cfg or {})
    joules = e.power_w * e.t_comp + e.e_down_j + e.e_up_j
    return e.t_client, joules
