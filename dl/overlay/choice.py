"""End-user task choice: a feasibility filter, then softmax sampling over utilities.

ALGORITHMS.md §6.4 (our proposal), over `[N, T]` arrays. Feasible: fits memory, one session
(FedScale time model §4.3) ends before the deadline, its energy (§5) fits the budget, and the
task is known, approved and unexpired. Utility U_i(T) = w_r ln(reward_T / E_i(T)) +
w_v value_i(T) - w_c participants_T / target_T (+ `sticky`); one Gumbel-max draw from
softmax(U / tau) over the feasible tasks and "idle" (-1).
Notes: docs/NOTES.md#dloverlaychoicepy
"""

import jax
import jax.numpy as jnp
from flax import struct
from jax import Array

from dl.errors import ConfigError


@struct.dataclass
class ChoiceParams:
    """Utility weights and sampling temperature (traced: changing them does not recompile)."""

    temperature: Array | float = 0.1  # [] tau of the softmax (> 0)
    w_reward: Array | float = 1.0  # [] weight of ln(reward per joule)
    w_interest: Array | float = 1.0  # [] weight of the user's interest value_i(T) in [0, 1]
    w_congestion: Array | float = 1.0  # [] weight of participants / target
    min_reward_per_j: Array | float = 1e-3  # [] the idle option pays this much per joule
    sticky: Array | float = 0.5  # [] bonus for keeping the current task


def check_params(p: ChoiceParams) -> None:
    """Raises ConfigError on a non-positive temperature or reservation pay (host values)."""
    if not float(p.temperature) > 0:
        raise ConfigError(f"discovery.choice.temperature must be > 0, got {p.temperature}")
    if not float(p.min_reward_per_j) > 0:
        raise ConfigError(
            f"discovery.choice.min_reward_per_j must be > 0, got {p.min_reward_per_j}"
        )


def static_feasible(
    node_memory_mb: Array,
    task_memory_mb: Array,
    t_session: Array,
    deadline_s: Array,
    e_session: Array,
    budget_j: Array,
) -> Array:
    """`[N, T] bool`: memory, deadline and energy fit (`t_session`, `e_session`: `[N, T]`)."""
    fits = node_memory_mb[:, None] >= task_memory_mb[None, :]
    in_time = t_session <= deadline_s[None, :]
    affordable = e_session <= budget_j[:, None]
    return fits & in_time & affordable


def utility(
    p: ChoiceParams,
    reward: Array,
    e_session: Array,
    interest: Array,
    participants: Array,
    target: Array,
    current: Array,
) -> Array:
    """`[N, T] f32` utility U_i(T) (module docstring); `current` `[N] i32` (-1: idle)."""
    per_joule = reward[None, :] / jnp.maximum(e_session, 1e-9)
    congestion = participants.astype(jnp.float32) / jnp.maximum(target, 1e-9)
    mine = current[:, None] == jnp.arange(reward.shape[0])[None, :]
    return (
        p.w_reward * jnp.log(jnp.maximum(per_joule, 1e-30))
        + p.w_interest * interest
        - p.w_congestion * congestion[None, :]
        + p.sticky * mine
    ).astype(jnp.float32)


def idle_utility(p: ChoiceParams) -> Array:
    """`[]` utility of staying idle."""
    return jnp.asarray(p.w_reward * jnp.log(p.min_reward_per_j), jnp.float32)


def _logits(p: ChoiceParams, u: Array, feasible: Array) -> Array:
    """`[N, T + 1]` softmax logits, idle last; infeasible tasks get -inf."""
    idle = jnp.broadcast_to(idle_utility(p), (u.shape[0], 1))
    full = jnp.concatenate([jnp.where(feasible, u, -jnp.inf), idle], axis=1)
    return full / p.temperature


def choice_probabilities(p: ChoiceParams, u: Array, feasible: Array) -> Array:
    """`[N, T + 1]`: P(node picks task j), last column P(idle)."""
    return jax.nn.softmax(_logits(p, u, feasible), axis=1)


@jax.jit
def choose(key: Array, p: ChoiceParams, u: Array, feasible: Array) -> Array:
    """`[N] int32`: one draw per node from softmax(U / tau) over feasible tasks + idle (-1)."""
    logits = _logits(p, u, feasible)
    g = jax.random.gumbel(key, (logits.size,)).reshape(logits.shape)  # flat: cheaper compile
    pick = jnp.argmax(logits + g, axis=1).astype(jnp.int32)
    return jnp.where(pick == u.shape[1], -1, pick)


@jax.jit
def greedy(p: ChoiceParams, u: Array, feasible: Array) -> Array:
    """`[N] int32`: the tau -> 0 limit of `choose` (argmax, ties: lowest index, idle last)."""
    pick = jnp.argmax(_logits(p, u, feasible), axis=1).astype(jnp.int32)
    return jnp.where(pick == u.shape[1], -1, pick)


def participants(assign: Array, active: Array, num_tasks: int) -> Array:
    """`[T] i32`: active nodes (`[N] bool`) assigned to each task (`assign` `[N]`, -1 idle)."""
    to = jnp.where(active & (assign >= 0), assign, num_tasks)
    return jnp.zeros((num_tasks,), jnp.int32).at[to].add(1, mode="drop")


def node_resources(
    key: Array, num_nodes: int, memory_mb: list[float], budget_j: tuple[float, float]
) -> tuple[Array, Array]:
    """Per-node (memory for training `[N]` MB, energy budget per session `[N]` J).

    Memory: uniform over the listed sizes (the RAM an app may use differs by phone); budget:
    uniform in [lo, hi]. Synthetic: the device catalogues carry neither.
    """
    lo, hi = (float(b) for b in budget_j)
    if not memory_mb or min(memory_mb) <= 0 or not 0 < lo <= hi:
        raise ConfigError(
            "discovery.choice needs memory_mb: a non-empty list of sizes > 0 and "
            f"budget_j: [lo, hi] with 0 < lo <= hi (got {memory_mb}, {budget_j})"
        )
    k1, k2 = jax.random.split(key)
    sizes = jnp.asarray(memory_mb, jnp.float32)
    mem = sizes[jax.random.randint(k1, (num_nodes,), 0, sizes.shape[0])]
    budget = jax.random.uniform(k2, (num_nodes,), minval=lo, maxval=hi)
    return mem, budget
