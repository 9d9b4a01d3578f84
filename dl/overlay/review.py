"""Verifiable peer review of tasks: hash-selected reviewers, k-of-m verdicts, reputation.

ALGORITHMS.md §6.3 (our proposal; hash-based sampling as in Plexus, verifiable random sortition).
The reviewers of task t are the m online nodes with reputation >= `r_min` and the smallest
`H(node_id, t)` (MurmurHash3, `dl.overlay.hashing`). A task is approved iff >= k of its m
reviewers approve before the deadline; an offline reviewer casts no vote. Colluders (fraction f)
and honest reviewers (right with probability q) vote; a vote matching the outcome earns +1,
else -2.
Notes: docs/NOTES.md#dloverlayreviewpy
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct
from jax import Array

from dl.errors import ConfigError
from dl.overlay.hashing import hash2, order_key


@struct.dataclass
class Panel:
    """The reviewer panel of each task, and their votes once cast."""

    ids: Array  # [T, m] i32  reviewer node ids, ascending hash; -1 where the seat is empty
    seated: Array  # [T, m] bool  the seat holds an eligible reviewer
    approve: Array  # [T, m] bool  the reviewer voted "approve"
    voted: Array  # [T, m] bool  the reviewer voted at all (online at the deadline)


def reviewer_hash(node_ids: Array, task_ids: Array, salt: int | Array = 0) -> Array:
    """`H(node_id, task_id)` as `uint32` (broadcasts); the salt is MurmurHash3's seed."""
    return hash2(node_ids, task_ids, salt)


_MIN = jnp.iinfo(jnp.int32).min


def _top_m(score: Array, m: int) -> tuple[Array, Array]:
    """`[T, m]` column indices of the m largest scores per row (descending), and the scores.

    m passes of `argmax` (ties: lowest index). On XLA:CPU `lax.top_k` sorts each row and was
    15x slower here (6.5 s vs 0.43 s for 4000 x 4000, m = 9); m is small.
    """
    rows = jnp.arange(score.shape[0])

    def pick(s: Array, _: None) -> tuple[Array, tuple[Array, Array]]:
        i = jnp.argmax(s, axis=1)
        return s.at[rows, i].set(_MIN), (i, s[rows, i])

    _, (ids, best) = jax.lax.scan(pick, score, None, length=m)
    return ids.T.astype(jnp.int32), best.T


@partial(jax.jit, static_argnames=("m",))
def select_reviewers(
    task_ids: Array,
    online: Array,
    m: int,
    reputation: Array | None = None,
    r_min: float | Array = -jnp.inf,
    salt: int | Array = 0,
) -> Panel:
    """The `m` eligible nodes with the smallest hash for each task (`task_ids`: `[T] int`).

    Eligible: online (`[N] bool`) and, when `reputation` (`[N]`) is given, reputation >= r_min.
    Seats beyond the number of eligible nodes stay empty (`ids == -1`, `seated == False`).
    """
    n = online.shape[0]
    if not 1 <= m <= n:
        raise ConfigError(f"review.m must be in 1..{n} (the number of nodes), got {m}")
    eligible = online if reputation is None else online & (reputation >= r_min)
    h = reviewer_hash(jnp.arange(n, dtype=jnp.uint32)[None, :], task_ids[:, None], salt)
    # [T, N] largest score = smallest hash; _MIN marks the ineligible (h = 2**32 - 1 is
    # clamped to the next score: it can only tie with 2**32 - 2, broken by the lower node id)
    score = jnp.where(eligible[None, :], jnp.maximum(~order_key(h), _MIN + 1), _MIN)
    ids, best = _top_m(score, m)
    seated = best > _MIN
    zeros = jnp.zeros(ids.shape, bool)
    return Panel(
        ids=jnp.where(seated, ids, -1).astype(jnp.int32), seated=seated, approve=zeros, voted=zeros
    )


def colluders(key: Array, num_nodes: int, f: float | Array) -> Array:
    """`[N] bool`: exactly round(f * N) colluding nodes, chosen by the seed (`f` may be traced)."""
    if isinstance(f, int | float) and not 0.0 <= f <= 1.0:
        raise ConfigError(f"review colluding fraction f must be in [0, 1], got {f}")
    count = jnp.round(jnp.asarray(f, jnp.float32) * num_nodes).astype(jnp.int32)
    order = jnp.argsort(jax.random.uniform(key, (num_nodes,)))
    return jnp.zeros((num_nodes,), bool).at[order].set(jnp.arange(num_nodes) < count)


@partial(jax.jit, static_argnames=("adversarial",))
def cast_votes(
    panel: Panel,
    key: Array,
    abusive: Array,
    colluding: Array,
    online_at_deadline: Array,
    q: float | Array = 0.95,
    adversarial: bool = True,
) -> Panel:
    """Every seated reviewer online at the deadline votes (`abusive`: `[T] bool`)."""
    safe = jnp.maximum(panel.ids, 0)
    bad = colluding[safe]  # [T, m]
    abusive = abusive[:, None]
    # drawn flat: a 2-D threefry draw cost ~2 s of XLA:CPU compile time here, a 1-D one 0.4 s
    u = jax.random.uniform(key, (panel.ids.size,)).reshape(panel.ids.shape)
    honest_ok = u < jnp.where(abusive, 1.0 - q, q)
    collude_ok = abusive | (not adversarial)
    voted = panel.seated & online_at_deadline[safe]
    approve = voted & jnp.where(bad, collude_ok, honest_ok)
    return panel.replace(approve=approve, voted=voted)


def decide(panel: Panel, k: int | Array) -> Array:
    """`[T] bool`: approved iff at least `k` approvals."""
    return panel.approve.sum(axis=1) >= k


def decide_weighted(
    panel: Panel, reputation: Array, k: int | Array, theta: float | Array = 0.6
) -> Array:
    """`[T] bool`: >= k approvals and approvers' reputation >= theta * the panel's (rep >= 0)."""
    rep = jnp.where(panel.seated, jnp.maximum(reputation[jnp.maximum(panel.ids, 0)], 0), 0)
    yes = jnp.where(panel.approve, rep, 0).sum(axis=1)
    return decide(panel, k) & (yes >= theta * rep.sum(axis=1))


def update_reputation(
    reputation: Array,
    panel: Panel,
    approved: Array,
    revoked: Array | None = None,
    gain: float = 1.0,
    loss: float = 2.0,
) -> Array:
    """+gain to voters that agree with the final outcome, -loss to the others (`[N]`)."""
    final = approved if revoked is None else approved & ~revoked
    right = panel.approve == final[:, None]
    delta = jnp.where(panel.voted, jnp.where(right, gain, -loss), 0.0)
    to = jnp.where(panel.voted, panel.ids, reputation.shape[0])  # non-voters: dropped
    return reputation.at[to.ravel()].add(delta.ravel().astype(reputation.dtype), mode="drop")


def approval_probability(
    m: int, k: int, f: float, q: float, abusive: bool, adversarial: bool = True
) -> float:
    """P(>= k of m reviewers approve), each independently colluding with probability f.

    A reviewer approves with probability p = f * c + (1 - f) * h, where h = 1 - q for an
    abusive task and q for a benign one, and c = 1 if the colluders approve this task
    (always for abusive tasks; for benign ones only when not `adversarial`), else 0.
    """
    if not 1 <= k <= m:
        raise ConfigError(f"review needs 1 <= k <= m, got k={k}, m={m}")
    collude = 1.0 if (abusive or not adversarial) else 0.0
    p = f * collude + (1.0 - f) * ((1.0 - q) if abusive else q)
    return sum(math.comb(m, j) * p**j * (1.0 - p) ** (m - j) for j in range(k, m + 1))
