"""Cyclon partial-view peer sampling, maintained by the simulation itself, over the node axis.

Voulgaris, Gavidia & van Steen, "CYCLON: Inexpensive Membership Management for Unstructured
P2P Overlays", JNSM 13(2), 2005; in the framework of Jelasity, Voulgaris, Guerraoui, Kermarrec
& van Steen, "Gossip-based peer sampling", ACM TOCS 25(3), 2007, Cyclon is tail peer selection,
push-pull propagation and the swapper view selection. Each node keeps a view of `c` neighbour
ids with ages; once per round every online node p

1. increases the age of all its entries by one;
2. picks its oldest neighbour q (ties at random). If q is offline the shuffle times out and p
   drops the entry: that is the only way dead ids leave the overlay, and as their ages only
   grow they become somebody's oldest entry after about c rounds;
3. sends q `ell - 1` random other entries plus itself with age 0, the slot of q being freed;
   q answers with `ell` random entries of its own view;
4. both discard received entries pointing at themselves or already in their view, and store
   the rest in empty slots first, then in the slots of the entries they sent.

`init_cyclon` starts from a random digraph in which each node has `c` distinct out-neighbours
(a uniform `c`-subset of the others, Floyd's algorithm), ages 0; `cyclon_sample` is the peer
sampler: a uniform entry of each node's view. A sampled peer may be offline (the view is stale);
the message is then lost, which the caller checks (`dl.overlay.partners.delivered`).

Synchronous rounds and conflicts: exchanges are computed from the views at the start of a
round, so a node may take part in at most one exchange per round (otherwise two exchanges would
swap the same slots). Every online p whose oldest entry q is online proposes the edge (p, q),
each proposal gets a random priority, and an edge is accepted when it has the lowest priority
(then the lowest initiator id) among all proposals touching p or q, a one-step Luby matching
built from two scatter-mins. `passes` repeats that among the still unmatched proposals. With
`passes = 3` about 50% of the online nodes exchange per round (each exchange involves two nodes,
so about 25% of the initiators succeed); a node whose proposal lost keeps its oldest entry and
tries it again next round. This is the asynchronous protocol slowed down by a constant, not a
different one: in-degrees stay balanced and dead links vanish, only in proportionally more
rounds. Drops of offline targets do not need a match and happen every round.

Offline nodes do nothing and keep their (stale) views. With `reseed=True` an online node whose
view became empty (all its neighbours left) gets one uniform random online node, as a real
client would re-contact a bootstrap server; without it such a node stays isolated until someone
who still knows it shuffles with it.

Cost per round: O(N c ell) elementwise work, a top-k and an argsort over each row of `c`, and
a few scatters over N; no sort over the node axis.
"""

from functools import partial

import jax
import jax.numpy as jnp
from flax import struct
from jax import Array

from dl.errors import ConfigError
from dl.overlay.partners import uniform_below, uniform_partners

_BIG = jnp.iinfo(jnp.int32).max


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


def _distinct_others(key: Array, n: int, c: int) -> Array:
    """[N, c] i32: for each node a uniform c-subset of the other n - 1 ids, in random order."""
    m = n - 1
    k_floyd, k_order = jax.random.split(key)

    def body(i, s):  # Floyd: for j = m-c..m-1 add t ~ U[0, j], or j if t is taken already
        j = m - c + i
        t = uniform_below(jax.random.fold_in(k_floyd, i), (n,), j + 1)
        taken = jnp.any(s == t[:, None], axis=1)
        return s.at[:, i].set(jnp.where(taken, j, t))

    s = jax.lax.fori_loop(0, c, body, jnp.full((n, c), -1, jnp.int32))
    s = s + (s >= jnp.arange(n, dtype=jnp.int32)[:, None])  # skip self
    order = jnp.argsort(jax.random.bits(k_order, (n, c)), axis=1)
    return jnp.take_along_axis(s, order, axis=1).astype(jnp.int32)


def init_cyclon(key: Array, n: int, view_size: int) -> CyclonState:
    """Each node starts with `view_size` distinct random neighbours other than itself, ages 0."""
    if not 1 <= view_size < n:
        raise ConfigError(
            f"cyclon view size must be in [1, {n - 1}] for {n} nodes, got {view_size}"
        )
    view = jax.jit(_distinct_others, static_argnums=(1, 2))(key, n, view_size)
    return CyclonState(view=view, age=jnp.zeros((n, view_size), jnp.int32))


def _match(key: Array, propose: Array, target: Array, passes: int) -> Array:
    """[N] bool: proposals (p -> target[p]) accepted, a matching (each node in <= 1 edge)."""
    n = propose.shape[0]
    rows = jnp.arange(n, dtype=jnp.int32)
    w_all = (jax.random.bits(key, (passes, n), jnp.uint32) >> 1).astype(jnp.int32)
    acc = jnp.zeros((n,), bool)
    busy = jnp.zeros((n,), bool)
    safe_t = jnp.maximum(target, 0)
    for p in range(passes):  # static and small
        e = propose & ~busy & ~busy[safe_t]
        to = jnp.where(e, target, n)  # n: dropped by the scatters
        w = jnp.where(e, w_all[p], _BIG)
        m1 = w.at[to].min(w, mode="drop")  # lowest priority among edges out of / into each node
        tie_p, tie_q = e & (w == m1), e & (w == m1[safe_t])
        m2 = jnp.where(tie_p, rows, n)
        m2 = m2.at[to].min(jnp.where(tie_q, rows, n), mode="drop")  # then lowest initiator id
        win = tie_p & tie_q & (m2 == rows) & (m2[safe_t] == rows)
        acc = acc | win
        busy = (busy | win).at[jnp.where(win, target, n)].set(True, mode="drop")
    return acc


def _mix(x: Array) -> Array:
    """A 32-bit integer hash (Wellons' lowbias32): cheap per-slot randomness from one draw."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def _slot_noise(h: Array, c: int) -> Array:
    """[N, c] u32 pseudo-random keys from one [N] u32 draw; distinct within a row (`_mix` is a
    bijection), so ties never need breaking."""
    return _mix(h[:, None] ^ (jnp.arange(c, dtype=jnp.uint32)[None, :] * jnp.uint32(0x9E3779B9)))


def _prefix(x: Array) -> Array:
    """Inclusive prefix sums of a 0/1 or small int [N, k] array along its short last axis, as one
    matrix product with a triangular matrix (exact: float32 holds integers below 2**24)."""
    k = x.shape[1]
    tri = jnp.triu(jnp.ones((k, k), jnp.float32))
    return jnp.dot(x.astype(jnp.float32), tri, precision=jax.lax.Precision.HIGHEST).astype(
        jnp.int32
    )


def _substep(view, age, key, pending, online, ell: int, passes: int):
    """Disjoint exchanges initiated by some `pending` nodes; returns (view, age, done [N])."""
    n, c = view.shape
    nodes = jnp.arange(n, dtype=jnp.int32)
    rows = nodes[:, None]
    k_draw, k_match = jax.random.split(key)
    h = jax.random.bits(k_draw, (2, n), jnp.uint32)

    # oldest neighbour of each pending node, ties at random
    valid = view >= 0
    oldest = jnp.max(jnp.where(valid, age, -1), axis=1, keepdims=True)
    noise = jnp.where(valid & (age == oldest), _slot_noise(h[0], c), 0)
    at_t = valid & (noise == jnp.max(noise, axis=1, keepdims=True))  # [N, c] one-hot
    oldest = oldest[:, 0]
    has = pending & (oldest >= 0)
    target = jnp.where(has, jnp.sum(jnp.where(at_t, view, 0), axis=1), -1)
    t_on = has & online[jnp.maximum(target, 0)]

    # a dead target times out: drop it; live ones propose an exchange, matched
    acc = _match(k_match, t_on, target, passes)
    partner = jnp.where(acc, target, -1)
    partner = partner.at[jnp.where(acc, target, n)].set(nodes, mode="drop")
    matched = partner >= 0
    dead = has & ~t_on
    free = at_t & (dead | acc)[:, None]  # dropped dead entry, or q's slot at p
    view = jnp.where(free, -1, view)
    age = jnp.where(free, 0, age)
    valid = view >= 0

    # what each matched node sends: initiators themselves (age 0) then ell - 1 random entries,
    # responders ell random entries (fewer if the view holds fewer). The position of an entry
    # in the message is its rank among the valid slots in the order of a random key.
    key_s = jax.lax.optimization_barrier(_slot_noise(h[1], c))  # hash once, not per pair
    pos = acc.astype(jnp.int32)[:, None]  # initiators put themselves first
    for t in range(c):  # static: c vectorized compares instead of an [N, c, c] array
        pos = pos + (valid[:, t : t + 1] & (key_s[:, t : t + 1] < key_s)).astype(jnp.int32)
    sent = valid & matched[:, None] & (pos < ell)  # [N, c] slots sent
    col = jnp.where(sent, rows * ell + pos, n * ell).reshape(-1)  # flat; n * ell: dropped
    sent_id = jnp.full((n * ell,), -1, jnp.int32).at[col].set(view.reshape(-1), mode="drop")
    sent_age = jnp.zeros((n * ell,), jnp.int32).at[col].set(age.reshape(-1), mode="drop")
    sent_id, sent_age = sent_id.reshape(n, ell), sent_age.reshape(n, ell)
    sent_id = sent_id.at[:, 0].set(jnp.where(acc, nodes, sent_id[:, 0]))
    sent_age = sent_age.at[:, 0].set(jnp.where(acc, 0, sent_age[:, 0]))

    # receive the partner's entries: drop self and known ids; the r-th entry kept goes to the
    # r-th empty slot, then to the slots of sent entries; extra entries are dropped
    pi = jnp.maximum(partner, 0)
    rcv_id = jnp.where(matched[:, None], sent_id[pi], -1)  # [N, ell]
    rcv_age = sent_age[pi]
    known = jnp.any(rcv_id[:, :, None] == view[:, None, :], axis=2)
    take = (rcv_id >= 0) & (rcv_id != rows) & ~known
    t_rank = _prefix(take.astype(jnp.int32)) - 1  # [N, ell] rank among the kept entries
    empty = ~valid
    n_empty = jnp.sum(empty, axis=1, keepdims=True)
    d_rank = jnp.where(
        empty, _prefix(empty.astype(jnp.int32)) - 1, n_empty + _prefix(sent.astype(jnp.int32)) - 1
    )
    d_rank = jnp.where(empty | sent, d_rank, ell)  # [N, c] rank of each usable slot
    idx = jnp.where(d_rank < ell, rows * ell + d_rank, n * ell).reshape(-1)
    slot_of = jnp.full((n * ell,), c, jnp.int32)  # [N * ell] usable slot of each rank (c: none)
    slot_of = slot_of.at[idx].set(jnp.tile(jnp.arange(c, dtype=jnp.int32), n), mode="drop")
    dest = jnp.take_along_axis(slot_of.reshape(n, ell), jnp.maximum(t_rank, 0), axis=1)
    dest = jnp.where(take & (dest < c), rows * c + dest, n * c).reshape(-1)
    view = view.reshape(-1).at[dest].set(rcv_id.reshape(-1), mode="drop").reshape(n, c)
    age = age.reshape(-1).at[dest].set(rcv_age.reshape(-1), mode="drop").reshape(n, c)
    return view, age, acc | dead | (pending & (oldest < 0))


@partial(jax.jit, static_argnames=("shuffle_len", "max_substeps", "passes", "reseed"))
def cyclon_shuffle(
    state: CyclonState,
    key: Array,
    online: Array,
    shuffle_len: int,
    max_substeps: int = 8,
    passes: int = 2,
    reseed: bool = False,
) -> CyclonState:
    """One Cyclon round: every online node (`online` [N] bool) initiates one shuffle.

    `shuffle_len` (ell, static) entries are swapped per exchange (capped at the view size).
    The round runs steps of disjoint exchanges (each a matching built in `passes` passes)
    until every online node has initiated, at most `max_substeps` steps (static); initiators
    left over try again next round. See the module doc.
    """
    view, age = state.view, state.age
    n, c = view.shape
    ell = max(1, min(shuffle_len, c))
    k_steps, k_seed = jax.random.split(key)
    age = jnp.where((view >= 0) & online[:, None], age + 1, age)  # once per round

    def cond(carry):
        i, _, _, pending = carry
        return (i < max_substeps) & jnp.any(pending)

    def body(carry):
        i, view, age, pending = carry
        k = jax.random.fold_in(k_steps, i)
        view, age, done = _substep(view, age, k, pending, online, ell, passes)
        return i + 1, view, age, pending & ~done

    _, view, age, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), view, age, online))

    if reseed:  # an online node left with an empty view re-contacts a bootstrap server
        slots = jnp.arange(c, dtype=jnp.int32)[None, :]
        lonely = online & jnp.all(view < 0, axis=1)
        seed = uniform_partners(k_seed, online)
        first = (slots == 0) & (lonely & (seed >= 0))[:, None]
        view = jnp.where(first, seed[:, None], view)
        age = jnp.where(first, 0, age)
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
    slot = jnp.argmax(jnp.cumsum(valid, axis=1) > r[:, None], axis=1)
    peer = jnp.take_along_axis(state.view, slot[:, None], axis=1)[:, 0]
    return jnp.where(online & (size > 0), peer, -1)


@jax.jit
def cyclon_in_degree(state: CyclonState) -> Array:
    """`[N] i32`: how many views hold each node (includes views of offline nodes)."""
    n = state.view.shape[0]
    v = state.view.reshape(-1)
    return jnp.zeros((n,), jnp.int32).at[jnp.where(v >= 0, v, n)].add(1, mode="drop")
