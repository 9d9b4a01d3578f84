"""Cyclon partial-view peer sampling, maintained by the simulation itself, over the node axis.

Voulgaris, Gavidia & van Steen, "CYCLON", JNSM 13(2), 2005; in the terms of Jelasity et al.,
"Gossip-based peer sampling", ACM TOCS 25(3), 2007: tail peer selection, push-pull, swapper.
`init_cyclon` draws a random c-out digraph; `cyclon_sample` picks a uniform view entry of each
online node (maybe offline: the caller checks `dl.network.partners.delivered`). A round is a few
steps of node-disjoint exchanges (a Luby matching); `reseed` refills empty views.
Notes: docs/NOTES.md#dlnetworkcyclonpy
"""

from functools import partial

import jax
import jax.numpy as jnp
from flax import struct
from jax import Array

from dl.errors import ConfigError
from dl.network.partners import _mulhi, online_index, uniform_below

_BIG = jnp.iinfo(jnp.int32).max
_GOLD = 0x9E3779B9  # odd constant (2**32 / golden ratio): distinct multiples mod 2**32
_PERMS = 256  # random slot permutations drawn per step, shared out among the nodes


@struct.dataclass
class CyclonState:
    """Every node's partial view (leading node axis)."""

    view: Array  # [N, c] i32  neighbour ids, -1 = empty slot; never self, never a duplicate
    age: Array  # [N, c] i32  age of each entry in rounds of its holders; 0 in empty slots

    @property
    def num_nodes(self) -> int:
        return self.view.shape[0]

    @property
    def view_size(self) -> int:
        return self.view.shape[1]


def _mix(x: Array) -> Array:
    """Wellons' lowbias32 integer hash, a bijection of u32."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _stream(seed: Array, j: Array | int) -> Array:
    """u32 random numbers of stream `j` (may be traced) from a `[N]` u32 seed (one per node)."""
    return _mix(seed + jnp.uint32(_GOLD) * (jnp.asarray(j).astype(jnp.uint32) + jnp.uint32(1)))


def _slot_noise(h: Array, c: int) -> Array:
    """[N, c] u32 random keys from `[N]` u32; distinct within a row (`_mix` is a bijection)."""
    return _mix(h[:, None] ^ (jnp.arange(c, dtype=jnp.uint32)[None, :] * jnp.uint32(_GOLD)))


def _perm_table(h: Array, c: int) -> tuple[Array, Array]:
    """P random permutations of c slots from `[P]` u32: (rank [P, c] the place of each slot,
    order [P, c] the slot at each place). Cheap for small P: [P, c, c] compares of hashes."""
    key = _slot_noise(h, c)
    rank = jnp.sum(key[:, None, :] < key[:, :, None], axis=2, dtype=jnp.int32)
    places = jnp.arange(c, dtype=jnp.int32)
    order = jnp.sum(jnp.where(rank[:, None, :] == places[None, :, None], places, 0), axis=2)
    return rank, order


def _tiled_slots(n: int, c: int) -> Array:
    """[N * c] i32: 0..c-1 repeated, the slot of each flat [N, c] index."""
    return jnp.tile(jnp.arange(c, dtype=jnp.int32), n)


def _prefix(x: Array) -> Array:
    """Inclusive prefix sums of a small non-negative int [N, k] array along its last axis: one
    matmul with a triangular matrix (exact in float32 below 2**24). `jnp.cumsum` along a short
    axis is several times slower on CPU, and shifted adds fuse into exponential recomputation.
    """
    k = x.shape[1]
    tri = jnp.triu(jnp.ones((k, k), jnp.float32))
    y = jnp.dot(x.astype(jnp.float32), tri, precision=jax.lax.Precision.HIGHEST)
    return y.astype(jnp.int32)


def _distinct_others(key: Array, n: int, c: int) -> Array:
    """[N, c] i32: for each node a uniform c-subset of the other n - 1 ids (Floyd's algorithm).

    The slots are not in random order; nothing depends on it (peer selection, message contents
    and sampling are uniform over the slots).
    """
    m = n - 1
    seed = jax.random.bits(key, (n,), jnp.uint32)

    def body(i, s):  # for j = m-c..m-1 add t ~ U[0, j], or j if t is taken already
        j = m - c + i
        t = _mulhi(_stream(seed, i), (j + 1).astype(jnp.uint32)).astype(jnp.int32)
        taken = jnp.any(s == t[:, None], axis=1)
        return s.at[:, i].set(jnp.where(taken, j, t))

    s = jax.lax.fori_loop(0, c, body, jnp.full((n, c), -1, jnp.int32))
    return s + (s >= jnp.arange(n, dtype=jnp.int32)[:, None])  # skip self


def init_cyclon(key: Array, n: int, view_size: int) -> CyclonState:
    """Each node starts with `view_size` distinct random neighbours other than itself, ages 0."""
    if not 1 <= view_size < n:
        raise ConfigError(
            f"cyclon view size must be in [1, {n - 1}] for {n} nodes, got {view_size}"
        )
    view = jax.jit(_distinct_others, static_argnums=(1, 2))(key, n, view_size)
    return CyclonState(view=view, age=jnp.zeros((n, view_size), jnp.int32))


def _match(prio: Array, propose: Array, target: Array) -> Array:
    """[N] bool: accepted proposals p -> target[p], a matching (each node in <= 1 edge).

    `prio` is [passes, N] u32. In each pass an edge wins if its (priority, initiator id) is the
    smallest among the remaining proposals out of or into both its ends.
    """
    n = propose.shape[0]
    nodes = jnp.arange(n, dtype=jnp.int32)
    acc = jnp.zeros((n,), bool)
    busy = jnp.zeros((n,), bool)
    safe_t = jnp.maximum(target, 0)
    for p in range(prio.shape[0]):  # static and small
        e = propose & ~busy & ~busy[safe_t]
        to = jnp.where(e, target, n)  # n: dropped by the scatters
        w = jnp.where(e, (prio[p] >> 1).astype(jnp.int32), _BIG)
        m1 = w.at[to].min(w, mode="drop")  # lowest priority among edges out of / into a node
        tie_p, tie_q = e & (w == m1), e & (w == m1[safe_t])
        m2 = jnp.where(tie_p, nodes, n)
        m2 = m2.at[to].min(jnp.where(tie_q, nodes, n), mode="drop")  # then lowest initiator
        win = tie_p & tie_q & (m2 == nodes) & (m2[safe_t] == nodes)
        acc = acc | win
        busy = (busy | win).at[jnp.where(win, target, n)].set(True, mode="drop")
    return acc


def _step(view, age, seed, step, pending, online, ell: int, passes: int):
    """One step of node-disjoint exchanges initiated by `pending` nodes.

    Returns (view, age, done [N]): done = initiated, timed out on a dead target, or empty view.
    """
    n, c = view.shape
    nodes = jnp.arange(n, dtype=jnp.int32)
    rows = nodes[:, None]
    draw = lambda j: _stream(seed, step * (3 + passes) + j)

    # oldest neighbour of each pending node, ties at random
    valid = view >= 0
    oldest = jnp.max(jnp.where(valid, age, -1), axis=1, keepdims=True)
    noise = jnp.where(valid & (age == oldest), _slot_noise(draw(0), c), 0)
    at_t = valid & (noise == jnp.max(noise, axis=1, keepdims=True))  # [N, c] one-hot
    oldest = oldest[:, 0]
    has = pending & (oldest >= 0)
    target = jnp.where(has, jnp.sum(jnp.where(at_t, view, 0), axis=1), -1)
    t_on = has & online[jnp.maximum(target, 0)]

    # a dead target times out and is dropped; live ones are proposals, matched
    acc = _match(jnp.stack([draw(2 + p) for p in range(passes)]), t_on, target)
    partner = jnp.where(acc, target, -1)
    partner = partner.at[jnp.where(acc, target, n)].set(nodes, mode="drop")
    matched = partner >= 0
    dead = has & ~t_on
    free = at_t & (dead | acc)[:, None]  # the dead entry, or q's slot at initiator p
    view = jnp.where(free, -1, view)
    age = jnp.where(free, 0, age)
    valid = view >= 0

    # messages: initiators send themselves (age 0) then ell - 1 random entries, responders ell
    # random entries (fewer if the view holds fewer): the first valid slots in the order of a
    # random permutation of the slots, one of `_PERMS` drawn for this step.
    n_perms = min(_PERMS, n)
    rank, order = _perm_table(draw(1)[:n_perms], c)  # [P, c] each
    which = draw(2 + passes) % n_perms
    rank, order = rank[which], order[which]  # [N, c] slot -> place, place -> slot
    before = _prefix(jnp.take_along_axis(valid, order, axis=1).astype(jnp.int32))
    pos = jnp.take_along_axis(before, rank, axis=1) - 1 + acc.astype(jnp.int32)[:, None]
    sent = valid & matched[:, None] & (pos < ell)  # [N, c] slots whose entry is sent
    col = jnp.where(sent, rows * ell + pos, n * ell).reshape(-1)  # flat; n * ell: dropped
    src = jnp.full((n * ell,), c, jnp.int32).at[col].set(_tiled_slots(n, c), mode="drop")
    src = src.reshape(n, ell)  # [N, ell] slot of each message entry (c: none)
    safe = jnp.minimum(src, c - 1)
    is_self = (jnp.arange(ell) == 0)[None, :] & acc[:, None]
    sent_id = jnp.where(is_self, rows, jnp.take_along_axis(view, safe, axis=1))
    sent_id = jnp.where(is_self | (src < c), sent_id, -1)
    sent_age = jnp.where(is_self, 0, jnp.take_along_axis(age, safe, axis=1))

    # replies: drop self and known ids; the r-th entry kept goes to the r-th empty slot, then
    # to the slots of the sent entries; entries beyond those slots are dropped
    pi = jnp.maximum(partner, 0)
    rcv_id = jnp.where(matched[:, None], sent_id[pi], -1)  # [N, ell]
    rcv_age = sent_age[pi]
    known = jnp.any(rcv_id[:, :, None] == view[:, None, :], axis=2)
    take = (rcv_id >= 0) & (rcv_id != rows) & ~known
    kept = [take[:, 0].astype(jnp.int32)]
    for r in range(1, ell):  # static and short
        kept.append(kept[-1] + take[:, r])
    t_rank = jnp.stack(kept, axis=1) - 1  # [N, ell] rank among the kept entries
    empty = ~valid
    both = _prefix(empty.astype(jnp.int32) + (c + 1) * sent.astype(jnp.int32))  # one matmul
    n_empty = both[:, -1:] % (c + 1)
    d_rank = jnp.where(empty, both % (c + 1), n_empty + both // (c + 1)) - 1
    d_rank = jnp.where((empty | sent) & (d_rank < ell), rows * ell + d_rank, n * ell)
    slot_of = jnp.full((n * ell,), c, jnp.int32)  # usable slot of each rank (c: none)
    slot_of = slot_of.at[d_rank.reshape(-1)].set(_tiled_slots(n, c), mode="drop")
    dest = jnp.take_along_axis(slot_of.reshape(n, ell), jnp.maximum(t_rank, 0), axis=1)
    dest = jnp.where(take & (dest < c), rows * c + dest, n * c).reshape(-1)
    view = view.reshape(-1).at[dest].set(rcv_id.reshape(-1), mode="drop").reshape(n, c)
    age = age.reshape(-1).at[dest].set(rcv_age.reshape(-1), mode="drop").reshape(n, c)
    return view, age, acc | dead | (pending & (oldest < 0))


@partial(jax.jit, static_argnames=("shuffle_len", "max_steps", "passes"))
def cyclon_shuffle(
    state: CyclonState,
    key: Array,
    online: Array,
    shuffle_len: int,
    max_steps: int = 8,
    passes: int = 2,
    reseed: bool | Array = False,
) -> CyclonState:
    """One Cyclon round in which every online node (`online` [N] bool) initiates one shuffle.

    `shuffle_len` (ell, static) entries are swapped per exchange, capped at the view size.
    Steps of node-disjoint exchanges (matchings built in `passes` passes, static) run until
    every online node has initiated, at most `max_steps` (static). `reseed` (traced bool):
    online nodes left with an empty view get one random online node. See the module doc.
    """
    view, age = state.view, state.age
    n, c = view.shape
    ell = max(1, min(shuffle_len, c))
    seed = jax.random.bits(key, (n,), jnp.uint32)
    age = jnp.where((view >= 0) & online[:, None], age + 1, age)

    def cond(carry):
        i, _, _, pending = carry
        return (i < max_steps) & jnp.any(pending)

    def body(carry):
        i, view, age, pending = carry
        view, age, done = _step(view, age, seed, i, pending, online, ell, passes)
        return i + 1, view, age, pending & ~done

    _, view, age, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), view, age, online))

    # reseed: a uniform online node other than itself (as `uniform_partners`), in slot 0
    ids, rank, n_on = online_index(online)
    h = _stream(seed, -1)  # stream -1: not used by the steps
    r = _mulhi(h, jnp.maximum(n_on - 1, 1).astype(jnp.uint32)).astype(jnp.int32)
    r = r + (r >= rank).astype(jnp.int32)
    lonely = reseed & online & (n_on >= 2) & jnp.all(view < 0, axis=1)
    first = (jnp.arange(c) == 0)[None, :] & lonely[:, None]
    view = jnp.where(first, ids[jnp.minimum(r, n - 1)][:, None], view)
    return CyclonState(view=view, age=jnp.where(view >= 0, age, 0))


@jax.jit
def cyclon_sample(state: CyclonState, key: Array, online: Array) -> Array:
    """`[N] i32`: a uniform entry of each online node's view; -1 if offline or the view is empty.

    The peer may be offline (a stale entry): the message is lost and the caller checks.
    """
    valid = state.view >= 0
    n = valid.shape[0]
    size = jnp.sum(valid, axis=1)
    r = uniform_below(key, (n,), jnp.maximum(size, 1))
    slot = jnp.argmax(_prefix(valid.astype(jnp.int32)) > r[:, None], axis=1)
    peer = jnp.take_along_axis(state.view, slot[:, None], axis=1)[:, 0]
    return jnp.where(online & (size > 0), peer, -1)


@jax.jit
def cyclon_in_degree(state: CyclonState) -> Array:
    """`[N] i32`: how many views hold each node (views of offline nodes included)."""
    n = state.view.shape[0]
    v = state.view.reshape(-1)
    return jnp.zeros((n,), jnp.int32).at[jnp.where(v >= 0, v, n)].add(1, mode="drop")
