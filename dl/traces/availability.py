"""Compiled per-node availability: sorted transition times, queried with a binary search.

Every trace source (STUNner, FedScale, synthetic) compiles to one `Availability` pytree over
`[0, horizon_s)`: `first_online[i]` and `times[i]` (sorted float32 flip instants, padded with
+inf). Sessions are half-open: the state at t is `first_online XOR (number of transitions <= t
is odd)`. The query functions are pure jax and jittable.
Notes: docs/NOTES.md#dltracesavailabilitypy
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Availability:
    """Per-node online/offline timeline (see module docstring)."""

    times: jnp.ndarray  # [N, T] f32 sorted transition times (s), padded with +inf
    first_online: jnp.ndarray  # [N] bool state at t = 0


def num_nodes(av: Availability) -> int:
    return int(av.first_online.shape[0])


def _count_le(av: Availability, t: jnp.ndarray) -> jnp.ndarray:
    """[N] i32 number of transitions <= t per node (t scalar or [N])."""
    t = jnp.broadcast_to(jnp.asarray(t, av.times.dtype), av.first_online.shape)
    return jax.vmap(lambda row, x: jnp.searchsorted(row, x, side="right"))(av.times, t)


def _time_of(av: Availability, k: jnp.ndarray) -> jnp.ndarray:
    """[N] f32: node i's transition number k[i] (0-based; +inf past the last)."""
    w = av.times.shape[1]
    row = jnp.take_along_axis(av.times, jnp.clip(k, 0, w - 1)[:, None], axis=1)[:, 0]
    return jnp.where(k < w, row, jnp.inf)


def is_online(av: Availability, t: jnp.ndarray) -> jnp.ndarray:
    """[N] bool: is node i online at time t."""
    return online_at(av, _count_le(av, t))


def next_transition(av: Availability, t: jnp.ndarray) -> jnp.ndarray:
    """[N] f32: the first transition strictly after t (+inf if none)."""
    return _time_of(av, _count_le(av, t))


def session_end(av: Availability, t: jnp.ndarray) -> jnp.ndarray:
    """[N] f32: the end of node i's online session holding t (+inf if it never ends), or t
    itself if node i is offline at t (one binary search)."""
    k = _count_le(av, t)
    nxt = _time_of(av, k)
    return jnp.where(online_at(av, k), nxt, jnp.broadcast_to(jnp.asarray(t, nxt.dtype), nxt.shape))


def advance(av: Availability, count: jnp.ndarray, nxt: jnp.ndarray, t):
    """(count, nxt) [N] at time t from their values at an earlier time: `count` transitions <= t
    per node and `nxt` the time of the next one (+inf: none). Start from (-1, -inf) (nothing
    loaded yet). A clock that moves forward a quantum at a time pays one compare over [N] per
    call, plus a gather for each round of transitions it passes; no binary search over [N, T]."""
    t = jnp.asarray(t, av.times.dtype)

    def due(nxt):  # one predicate for the loop's test and its step
        return nxt <= t

    def step(c):
        count, nxt = c
        passed = due(nxt)
        count = count + passed.astype(count.dtype)
        return count, jnp.where(passed, _time_of(av, count), nxt)

    return jax.lax.while_loop(lambda c: due(c[1]).any(), step, (count, nxt))


def online_at(av: Availability, count: jnp.ndarray) -> jnp.ndarray:
    """[N] bool online state after `count` [N] transitions (`advance`, or `_count_le`)."""
    return av.first_online ^ (count % 2 == 1)


def online_fraction(av: Availability, t: jnp.ndarray) -> jnp.ndarray:
    """[] f32 fraction of nodes online at time t."""
    return jnp.mean(is_online(av, t).astype(jnp.float32))


def online_during(av: Availability, t0: jnp.ndarray, t1: jnp.ndarray) -> jnp.ndarray:
    """[N] bool: online at every instant of the closed interval [t0, t1] (t1 >= t0).

    This is FedScale's test for keeping work started at t0 and finished at t1: the node must be
    online at t0 and still online at t1, with no flip in between.
    """
    t1 = jnp.broadcast_to(jnp.asarray(t1, av.times.dtype), av.first_online.shape)
    return is_online(av, t0) & (next_transition(av, t0) > t1)


def from_transitions(
    node: np.ndarray, times: np.ndarray, first_online: np.ndarray, n: int | None = None
) -> Availability:
    """Packs flat transitions into an Availability (host side, numpy).

    `node` [M] node index of each transition and `times` [M] its time; they must be grouped by node
    with times non-decreasing within a node. Consecutive transitions must alternate (callers drop
    non-changes first). `first_online` [N] bool.
    """
    first_online = np.asarray(first_online, bool)
    n = first_online.shape[0] if n is None else n
    node = np.asarray(node, np.int64)
    counts = np.bincount(node, minlength=n)
    width = max(1, int(counts.max(initial=0)))
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    col = np.arange(node.size) - start[node]
    out = np.full((n, width), np.inf, np.float32)
    out[node, col] = times
    return Availability(times=jnp.asarray(out), first_online=jnp.asarray(first_online))


def from_states(
    node: np.ndarray, times: np.ndarray, states: np.ndarray, n: int, horizon_s: float
) -> Availability:
    """Packs state-setting events into an Availability, dropping events that change nothing.

    `node`, `times`, `states` [M]: at `times[j]` node `node[j]` enters `states[j]`; grouped by node,
    times non-decreasing, and every node's first event at time 0 (it gives `first_online`; a node
    without events is offline). Events at or after `horizon_s` are dropped.
    """
    node = np.asarray(node, np.int64)
    states = np.asarray(states, bool)
    times = np.asarray(times, np.float64)
    first = np.ones(node.size, bool)
    first[1:] = node[1:] != node[:-1]
    first_online = np.zeros(n, bool)
    first_online[node[first]] = states[first]
    change = np.zeros(node.size, bool)
    change[1:] = (states[1:] != states[:-1]) & ~first[1:]
    keep = change & (times < horizon_s)
    return from_transitions(node[keep], times[keep], first_online, n)


def to_numpy(av: Availability) -> tuple[np.ndarray, np.ndarray]:
    """(times [N, T] f32, first_online [N] bool) as numpy, for host-side analysis."""
    return np.asarray(av.times), np.asarray(av.first_online)


def online_time_fraction(av: Availability, horizon_s: float) -> float:
    """Time-weighted fraction of node-seconds online over [0, horizon_s) (host side)."""
    times, first = to_numpy(av)
    t = np.minimum(times.astype(np.float64), horizon_s)
    edges = np.concatenate([np.zeros((t.shape[0], 1)), t, np.full((t.shape[0], 1), horizon_s)], 1)
    lengths = np.diff(edges, axis=1)  # piece j has state first ^ (j odd)
    on = first[:, None] ^ (np.arange(lengths.shape[1]) % 2 == 1)[None, :]
    return float((lengths * on).sum() / (horizon_s * t.shape[0]))


def hourly_profile(av: Availability, horizon_s: float, step_s: float = 300.0) -> np.ndarray:
    """[24] mean online fraction per hour of day of simulated time (t mod 86400), sampled every
    `step_s` seconds over [0, horizon_s). Host side; uses `is_online` under jit."""
    ts = np.arange(0.0, horizon_s, step_s)
    sweep = jax.jit(jax.vmap(online_fraction, in_axes=(None, 0)))
    frac = np.asarray(sweep(av, jnp.asarray(ts, jnp.float32)))
    hour = ((ts % 86400.0) // 3600.0).astype(int)
    return np.bincount(hour, frac, 24) / np.maximum(np.bincount(hour, minlength=24), 1)
