"""The overlay on the virtual clock: publish, review, disseminate, choose (system-only).

DESIGN.md semantics 5, ALGORITHMS.md §6. Rounds every `period_s` of virtual time on the training's
availability trace: review (computed for all tasks first, from the trace only), an approved task
enters as a hot rumor at its first approving reviewer, dissemination, then choice. A chunk of
rounds is one jitted `lax.scan`; its output `assign [R, N] int8` (-1: none) drives training
(`dl.multitask`).
Notes: docs/NOTES.md#dloverlayevolvepy
"""

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import Array

from dl.errors import ConfigError
from dl.overlay import choice as ch
from dl.overlay import review as rv
from dl.overlay.dissemination import MODES, gossip_round, init_knowledge, publish
from dl.overlay.tasks import TaskTable
from dl.traces.availability import Availability, is_online


@dataclass(frozen=True)
class OverlaySpec:
    """Static settings (config group `discovery`)."""

    modes: tuple[str, ...] = ("push_pull",)  # gossip modes run in each round, in order
    period_s: float = 60.0  # overlay round length
    rumor_k: int = 3  # rumor-mongering counter
    m: int = 5  # reviewers per task
    k: int = 3  # approvals needed
    q: float = 0.95  # honest reviewers' accuracy
    f: float = 0.1  # colluding fraction of nodes
    adversarial: bool = True  # colluders also reject benign tasks
    review_deadline_s: float = 600.0  # D
    salt: int = 0  # reviewer-hash seed
    choice_period_s: float = 3600.0  # re-evaluation period
    chunk_rounds: int = 256  # rounds per jitted scan


@struct.dataclass
class ReviewOutcome:
    """Review of every task (task axis first)."""

    approved: Array  # [T] bool k or more approvals
    approvals: Array  # [T] i32 approve votes
    voted: Array  # [T] i32 reviewers who voted (online at the deadline)
    decided_round: Array  # [T] i32 round of the verdict (the task spreads from then on)
    entry: Array  # [T] i32 node where an approved task enters the overlay (-1: none)
    reviewers: Array  # [T, m] i32 panel (-1: empty seat)


@dataclass
class OverlayResult:
    """Host-side record of an overlay run (numpy; R rounds, N nodes, T tasks)."""

    times: np.ndarray  # [R] f32 round start times
    assign: np.ndarray  # [R, N] int8 task trained during the round (-1: none)
    online: np.ndarray  # [R] i32 online nodes
    known_online: np.ndarray  # [R, T] i32 online nodes that know the task
    known: np.ndarray  # [R, T] i32 nodes that know the task
    participants: np.ndarray  # [R, T] i32 online nodes assigned to the task
    review: ReviewOutcome
    messages_per_node: float  # overlay messages sent per node over the run
    period_s: float


def check_spec(s: OverlaySpec, n: int) -> None:
    for m in s.modes:
        if m not in MODES:
            raise ConfigError(f"unknown discovery.mode '{m}' (choose from: {', '.join(MODES)})")
    if not s.period_s > 0 or not s.choice_period_s > 0:
        raise ConfigError("discovery.period_s and discovery.choice.period_s must be > 0")
    if not 1 <= s.k <= s.m <= n:
        raise ConfigError(f"discovery.review needs 1 <= k <= m <= nodes (k={s.k}, m={s.m}, n={n})")
    if not (0 <= s.q <= 1 and 0 <= s.f <= 1):
        raise ConfigError(f"discovery.review q and f must be in [0, 1] (q={s.q}, f={s.f})")


@partial(jax.jit, static_argnames=("s",))
def review_tasks(key: Array, table: TaskTable, av: Availability, s: OverlaySpec) -> ReviewOutcome:
    """Reviewer panels at each task's submission round, votes at its deadline (§6.3)."""
    n = av.first_online.shape[0]
    r_pub = jnp.ceil(table.publish_s / s.period_s - 1e-4).astype(jnp.int32)  # f32-safe
    window = max(1, math.ceil(s.review_deadline_s / s.period_s - 1e-4))
    r_dec = r_pub + window
    at = jax.vmap(is_online, in_axes=(None, 0))
    on_pub = at(av, r_pub.astype(jnp.float32) * s.period_s)  # [T, N]
    # a reviewer answers if it is online at some round of (submission, deadline]
    on_dec = jnp.zeros_like(on_pub)
    for w in range(1, window + 1):
        on_dec = on_dec | at(av, (r_pub + w).astype(jnp.float32) * s.period_s)
    ids = jnp.arange(table.num_tasks, dtype=jnp.int32)

    def one(tid, on, k_vote, abusive, on_deadline, colluding):
        panel = rv.select_reviewers(tid[None], on, s.m, salt=s.salt)
        return rv.cast_votes(
            panel, k_vote, abusive[None], colluding, on_deadline, s.q, adversarial=s.adversarial
        )

    k_col, k_vote = jax.random.split(key)
    colluding = rv.colluders(k_col, n, s.f)
    keys = jax.random.split(k_vote, table.num_tasks)
    panel = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None))(
        ids, on_pub, keys, table.abusive, on_dec, colluding
    )
    panel = jax.tree.map(lambda x: x[:, 0], panel)  # [T, 1, m] -> [T, m]
    approved = rv.decide(panel, s.k)
    first = jnp.argmax(panel.approve, axis=1)
    entry = jnp.where(approved, panel.ids[jnp.arange(table.num_tasks), first], -1)
    return ReviewOutcome(
        approved=approved,
        approvals=panel.approve.sum(axis=1, dtype=jnp.int32),
        voted=panel.voted.sum(axis=1, dtype=jnp.int32),
        decided_round=r_dec,
        entry=entry.astype(jnp.int32),
        reviewers=panel.ids,
    )


def interest_values(key: Array, interest: Array, n: int) -> Array:
    """`[N, T]` value_i(T) in [0, 1]: Beta(a, 1) draws with mean `interest[T]` (a = m/(1-m))."""
    u = jax.random.uniform(key, (n * interest.shape[0],)).reshape(n, -1)
    m = jnp.clip(interest, 1e-6, 1 - 1e-6)
    return u ** ((1 - m) / m)[None, :]


def run_overlay(
    key: Array,
    s: OverlaySpec,
    table: TaskTable,
    av: Availability,
    num_rounds: int,
    feasible: Array,
    e_session: Array,
    params: ch.ChoiceParams,
) -> OverlayResult:
    """Runs `num_rounds` overlay rounds; `feasible`, `e_session`: `[N, T]` static parts."""
    n, t = feasible.shape
    check_spec(s, n)
    ch.check_params(params)
    k_rev, k_int, k_phase, k_run = jax.random.split(key, 4)
    review = review_tasks(k_rev, table, av, s)
    value = interest_values(k_int, table.interest, n)
    every = max(1, round(s.choice_period_s / s.period_s))
    phase = jax.random.randint(k_phase, (n,), 0, every)

    def step(carry, r):
        know, assign, prev = carry
        now = r.astype(jnp.float32) * s.period_s
        online = is_online(av, now)
        origin = jnp.where(review.approved & (r == review.decided_round), review.entry, -1)
        know = publish(know, origin, now)
        kg, kc = jax.random.split(jax.random.fold_in(k_run, r))
        know = gossip_round(know, kg, online, now, s.rumor_k, mode=s.modes)
        live = review.approved & (r >= review.decided_round) & (now < table.expiry_s)
        avail = know.knows & live[None, :] & feasible  # [N, T]
        keeps = jnp.take_along_axis(avail, jnp.maximum(assign, 0)[:, None], axis=1)[:, 0]
        lost = (assign >= 0) & ~keeps
        assign = jnp.where(lost, -1, assign)
        due = ((r + phase) % every == 0) | (avail & ~prev).any(axis=1) | lost
        parts = ch.participants(assign, online, t)
        u = ch.utility(params, table.reward, e_session, value, parts, table.target, assign)
        assign = jnp.where(online & due, ch.choose(kc, params, u, avail), assign)
        out = (
            assign.astype(jnp.int8),
            online.sum(dtype=jnp.int32),
            (know.knows & online[:, None]).sum(axis=0, dtype=jnp.int32),
            know.knows.sum(axis=0, dtype=jnp.int32),
            ch.participants(assign, online, t),
        )
        return (know, assign, avail), out

    @jax.jit
    def chunk(carry, r0):
        return jax.lax.scan(step, carry, r0 + jnp.arange(s.chunk_rounds, dtype=jnp.int32))

    carry = (init_knowledge(n, t), jnp.full((n,), -1, jnp.int32), jnp.zeros((n, t), bool))
    outs = []
    for r0 in range(0, num_rounds, s.chunk_rounds):
        carry, out = chunk(carry, jnp.int32(r0))
        outs.append(jax.tree.map(np.asarray, out))
    cat = [np.concatenate(x)[:num_rounds] for x in zip(*outs, strict=True)]
    know = carry[0]
    return OverlayResult(
        times=np.arange(num_rounds, dtype=np.float32) * np.float32(s.period_s),
        assign=cat[0],
        online=cat[1],
        known_online=cat[2],
        known=cat[3],
        participants=cat[4],
        review=jax.tree.map(np.asarray, review),
        messages_per_node=float(np.asarray(know.sent).mean()),
        period_s=s.period_s,
    )


def spec_from_config(d: dict) -> tuple[OverlaySpec, ch.ChoiceParams, dict]:
    """(OverlaySpec, ChoiceParams, node-resource options) from the `discovery` config."""
    d = dict(d or {})
    rev, cho = dict(d.pop("review", {}) or {}), dict(d.pop("choice", {}) or {})
    d.pop("name", None)
    modes = d.pop("mode", ["push_pull"])
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    res = {k: cho.pop(k) for k in ("memory_mb", "budget_j") if k in cho}
    try:
        spec = OverlaySpec(
            modes=modes,
            **d,
            **{("review_deadline_s" if k == "deadline_s" else k): v for k, v in rev.items()},
            **({"choice_period_s": cho.pop("period_s")} if "period_s" in cho else {}),
        )
        params = ch.ChoiceParams(**cho)
    except TypeError as e:
        raise ConfigError(f"bad keys in discovery: {e}") from None
    return spec, params, res
