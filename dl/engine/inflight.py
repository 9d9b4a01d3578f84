"""Gossip messages on the wire: a fixed-capacity buffer of messages sent but not yet arrived.

Hegedűs et al. (DAIS 2019, JPDC 2021; DESIGN.md §Semantics 3): a message takes its transfer
time `bits / min(up, down)` and is merged when it *arrives*, carrying the sender's model, age,
partition and coordinate mask as they were when it was *sent*. A message that arrives in the
quantum it was sent in never enters the buffer (it is delivered straight from the sender's
model); only messages that cross a quantum boundary are stored, with a copy of the payload.

Every message whose path holds enters the buffer when it is sent (with a copy of its payload,
the sender's model then) and leaves it when it is delivered, in the same quantum or a later one:
the delivery phase then reads payloads from the buffer only, never a node model it may already
have merged, so the engine can update node models in place (issue 17).

Capacity K is static. `inflight_bound` derives, on the host, a K that cannot be exceeded:
between the sends and the deliveries of quantum [t0, t1) the buffer holds the messages with
send time < t1 and arrival >= t0. Node i's proactive sends are at least a period P apart, so at
most ceil((T_i + q) / P) of them lie in [t0 - T_i, t1); its reactive sends leave at quantum
starts, at most R per quantum, so at most R * (floor(T_i / q) + 1) (T_i: node i's slowest
transfer, to the slowest receiver). An explicit `inflight_cap` bounds the messages still on the
wire after a quantum (arrival >= t1); the buffer gets room for that many plus the messages that
can arrive in the quantum they are sent in (`same_quantum_bound`). A message that finds the cap
full is lost and counted (`messages_overflow`), never dropped silently.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dl.arrays import put_rows


@struct.dataclass
class InFlight:
    valid: jnp.ndarray  # [K] bool the slot holds a message on the wire
    sender: jnp.ndarray  # [K] i32
    receiver: jnp.ndarray  # [K] i32
    slot: jnp.ndarray  # [K] i32 send slot (0 proactive, 1.. reactive)
    arrive: jnp.ndarray  # [K] f32 arrival time (s)
    age: jnp.ndarray  # [K] f32 sender's age (its partition's age) at send time
    part: jnp.ndarray  # [K] i32 partition carried (partitioned subsampling)
    seed: jnp.ndarray  # [K] u32 seed of the coordinate mask (model subsampling)
    params: Any  # pytree [K, ...] sender's model at send time; None in system-only mode


def empty_inflight(params, capacity: int, train: bool) -> InFlight:
    """An empty buffer of `capacity` slots; `params` is one model (no node axis)."""
    k = int(capacity)

    def zi():  # one buffer per field: a chunk donates its state
        return jnp.zeros((k,), jnp.int32)

    return InFlight(
        valid=jnp.zeros((k,), bool),
        sender=zi(),
        receiver=zi(),
        slot=zi(),
        arrive=jnp.full((k,), jnp.inf, jnp.float32),
        age=jnp.zeros((k,), jnp.float32),
        part=zi(),
        seed=jnp.zeros((k,), jnp.uint32),
        params=jax.tree.map(lambda p: jnp.zeros((k,) + p.shape, p.dtype), params)
        if train
        else None,
    )


def capacity_of(buf: InFlight) -> int:
    return int(buf.valid.shape[0])


def grow(buf: InFlight, capacity: int) -> InFlight:
    """`buf` padded with empty slots up to `capacity` (static shapes; no-op if big enough)."""
    extra = int(capacity) - capacity_of(buf)
    if extra <= 0:
        return buf
    fill = {"valid": False, "arrive": jnp.inf}

    def pad(name, x):
        tail = jnp.full((extra,) + x.shape[1:], fill.get(name, 0), x.dtype)
        return jnp.concatenate([x, tail])

    fields = {f: pad(f, getattr(buf, f)) for f in ("valid", "sender", "receiver", "slot")}
    fields |= {f: pad(f, getattr(buf, f)) for f in ("arrive", "age", "part", "seed")}
    params = None
    if buf.params is not None:
        params = jax.tree.map(lambda p: pad("params", p), buf.params)
    return InFlight(**fields, params=params)


def _transfer_s(up_kbps, down_kbps, msg_bits: float, fastest: bool):
    """[N] each sender's transfer time to the fastest (or slowest) receiver, float64 s."""
    up = np.asarray(up_kbps, np.float64)
    down = np.asarray(down_kbps, np.float64)
    d = float(np.max(down) if fastest else np.min(down))
    return msg_bits / (np.minimum(up, d) * 1024.0)


def inflight_bound(
    up_kbps,
    down_kbps,
    msg_bits: float,
    quantum_s: float,
    period_s: float,
    n_reactive: int,
    nodes=None,
) -> int:
    """Host-side capacity that the buffer cannot outgrow (module docstring). Bandwidths are
    kbit/s of 1024 bits (FedScale); they must be concrete arrays. With `nodes` (the senders'
    Availability) only nodes online in a quantum count in it (`busiest_quantum`)."""
    t = _transfer_s(up_kbps, down_kbps, msg_bits, fastest=False)  # [N] worst transfer time
    tol = 1e-3 * quantum_s + 1e-6 * t  # float32 clocks: round the bound up, never down
    proactive = np.ceil((t + quantum_s + tol) / period_s)
    reactive = n_reactive * (np.floor((t + tol) / quantum_s) + 1)
    per_node = proactive + reactive
    bound = np.sum(per_node)
    if nodes is not None:
        bound = min(bound, busiest_quantum(nodes, per_node, quantum_s))
    return max(1, int(bound))


def busiest_quantum(nodes, weight, quantum_s: float, extend=None) -> float:
    """max over quanta [jq, (j+1)q) of the summed `weight` [N] of the nodes online at some
    instant of it (host side). A message is in the buffer during quantum j only if its path
    holds: its sender is online throughout [send, arrival], an interval that meets [t0, t1)
    (send < t1, arrival >= t0), so at most `weight[i]` of node i's messages are there, and none
    while it is offline the whole quantum. Sessions are widened by a quantum's 1e-3 (float32
    clocks) so the bound errs upward; `extend` [N] s (optional) lengthens node i's sessions at
    their end (`dl.engine.inbox`: a node counts while it may still be training)."""
    times = np.asarray(nodes.times, np.float64)  # [N, T] sorted, padded with +inf
    first = np.asarray(nodes.first_online, bool)
    n = times.shape[0]
    # boundaries per node: [0, t1, t2, ...] if online at 0, else [t1, t2, ...]; sessions are
    # (b0, b1), (b2, b3), ...
    b = np.full((n, times.shape[1] + 2), np.inf)
    b[first, 0] = 0.0
    b[first, 1 : 1 + times.shape[1]] = times[first]
    b[~first, : times.shape[1]] = times[~first]
    start, end = b[:, 0::2], b[:, 1::2]
    m = min(start.shape[1], end.shape[1])
    start, end = start[:, :m], end[:, :m]
    w = np.broadcast_to(np.asarray(weight, np.float64)[:, None], start.shape)
    live = np.isfinite(start)
    eps = 1e-3 * quantum_s
    if extend is not None:
        end = end + np.asarray(extend, np.float64)[:, None]
    with np.errstate(invalid="ignore"):
        j0 = np.floor((start - eps) / quantum_s)  # [N, m] first quantum index (inf: padding)
        j1 = np.where(np.isfinite(end), np.ceil((end + eps) / quantum_s), np.inf)
    # a node counts once: a (widened or extended) session ends where its next one starts
    j1[:, :-1] = np.minimum(j1[:, :-1], j0[:, 1:])
    j0, j1 = j0[live], j1[live]
    ev_t = np.concatenate([j0, j1])
    ev_w = np.concatenate([w[live], -w[live]])
    order = np.lexsort((ev_w, ev_t))  # at one quantum index, ends (-w) before starts
    return float(np.max(np.cumsum(ev_w[order]), initial=0.0))


def same_quantum_bound(up_kbps, down_kbps, msg_bits: float, quantum_s: float, n_slots: int):
    """Messages that can arrive in the quantum they are sent in: a sender sends at most
    `n_slots` per quantum, and only a sender whose fastest transfer is shorter than a quantum."""
    t = _transfer_s(up_kbps, down_kbps, msg_bits, fastest=True)
    return int(np.sum(t < quantum_s * (1 + 1e-3) + 1e-6 * t)) * int(n_slots)


def store(buf: InFlight, keep: jnp.ndarray, msgs: InFlight):
    """Puts the messages of `msgs` [M] with `keep` into free slots, in message order.
    Returns (buffer, overflow [M] bool: kept messages that found no free slot)."""
    k = capacity_of(buf)
    rank = jnp.cumsum(keep.astype(jnp.int32)) - 1
    free = jnp.nonzero(~buf.valid, size=k, fill_value=k)[0]  # [K] free slot ids, ascending
    n_free = (~buf.valid).sum()
    fits = keep & (rank < n_free)
    dst = jnp.where(fits, free[jnp.clip(rank, 0, k - 1)], k)

    def put(old, new):
        return put_rows(old, dst, new)

    out = jax.tree.map(put, buf, msgs.replace(valid=fits))
    return out, keep & ~fits


def store_all(buf: InFlight, wire: jnp.ndarray, msgs: InFlight, payload, chunk: int):
    """Stores every message of `msgs` [M] with `wire`, `chunk` at a time, so the payload copies
    cost what is stored, not M. `payload(idx [c]) -> pytree [c, ...]` (or None) gathers the
    payloads of messages idx. Returns (buffer, [] f32 messages that found no free slot)."""
    m = wire.shape[0]
    c = max(1, min(int(chunk), m))
    count = wire.sum()
    sel = jnp.nonzero(wire, size=-(-m // c) * c, fill_value=0)[0]

    def body(i, carry):
        b, lost = carry
        idx = jax.lax.dynamic_slice(sel, (i * c,), (c,))
        keep = jnp.arange(c) + i * c < count
        part = jax.tree.map(lambda x: x[idx], msgs.replace(params=None))
        b, over = store(b, keep, part.replace(params=payload(idx)))
        return b, lost + over.sum().astype(jnp.float32)

    return jax.lax.fori_loop(0, (count + c - 1) // c, body, (buf, jnp.zeros((), jnp.float32)))
