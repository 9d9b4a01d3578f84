"""The inbox pool: the models queued by training nodes, P rows shared by N nodes (issue 17).

A gossip node that is training keeps the last model it receives (dasklearn `gossip/client.py`)
and merges it when its session ends. Only training nodes hold one, and a node trains only for
`t_comp` after a quantum in which it was online (it received a message, or finished a session
with a model queued), so at the end of quantum j the holders are nodes online at some instant
of [t1 - t_comp - q, t1): `pool_bound` counts them at the busiest quantum of the availability
trace (`busiest_quantum` with sessions extended by t_comp + q), 30-40% of N on STUNner. A
holder has a slot (`slot` [N] i32, P = none); a node that must queue a model and finds no free
slot loses it (counted in `inbox_overflow`). That can happen only with an explicit
smaller `inbox_cap`, or when sessions wait past their end because more than `max_trainings`
were due in a quantum (`trainings_deferred` > 0); otherwise results equal a per-node inbox.
"""

import jax
import jax.numpy as jnp
import numpy as np

from dl.arrays import floats_tree, store, view
from dl.engine.inflight import busiest_quantum
from dl.engine.rows import for_rows, set_rows, take_rows


def pool_bound(nodes, t_comp, quantum_s: float) -> int:
    """Inbox holders at once, at most (host side; module docstring)."""
    t = np.asarray(t_comp, np.float64)
    n = t.shape[0]
    ext = np.where(np.isfinite(t), t, 0.0) + quantum_s
    return max(1, min(n, int(busiest_quantum(nodes, np.ones(n), quantum_s, extend=ext))))


def pool_size(n: int, cap: int, nodes, t_comp, quantum_s: float, train: bool) -> int:
    """Rows of the pool: 1 without training (no models), `cap` if > 0 (at most N), else the
    bound."""
    if not train:
        return 1
    if cap > 0:
        return min(int(cap), n)
    return pool_bound(nodes, t_comp, quantum_s)


def rows_in(pool) -> int:
    """P, the pool's rows (static)."""
    return int(jax.tree.leaves(pool)[0].shape[0])


def claim(slot: jnp.ndarray, want: jnp.ndarray, p: int):
    """Slots for the nodes `want` [N] bool that hold none, free slots in ascending order by node
    id. Returns (slot [N] i32, over [N] bool: wanted, none left)."""
    need = want & (slot >= p)
    used = jnp.zeros((p,), bool).at[slot].set(True, mode="drop")
    free = jnp.nonzero(~used, size=p, fill_value=p)[0].astype(jnp.int32)  # [P] ascending
    rank = jnp.cumsum(need.astype(jnp.int32)) - 1
    got = jnp.where(need, free[jnp.clip(rank, 0, p - 1)], slot)
    got = jnp.where(need & (rank >= (~used).sum()), p, got)
    return got, want & (got >= p)


def release(slot: jnp.ndarray, done: jnp.ndarray, p: int) -> jnp.ndarray:
    """The slots of the nodes `done` [N] bool are free again."""
    return jnp.where(done, p, slot)


def slot_rows(slot: jnp.ndarray, idx: jnp.ndarray, p: int) -> jnp.ndarray:
    """Pool rows of the node rows idx [c] (padding idx >= N maps past the pool: dropped)."""
    n = slot.shape[0]
    return jnp.where(idx < n, slot[jnp.minimum(idx, n - 1)], p)


def read(pool, slot, idx):
    """The queued models of node rows idx [c] -> [c, ...] (`take_rows` of their slots)."""
    return take_rows(pool, slot_rows(slot, idx, rows_in(pool)))


def write(pool, slot, mask, c: int, fn):
    """Each node i with `mask` gets `fn(idx [c]) -> [c, ...]` written to its slot, c rows at a
    time (`for_rows`)."""
    p = rows_in(pool)
    return for_rows(mask, c, pool, lambda t, idx: set_rows(t, slot_rows(slot, idx, p), fn(idx)))


def by_slot(v: jnp.ndarray, slot: jnp.ndarray, mask: jnp.ndarray, p: int, fill=0):
    """[N] -> [P]: v of the nodes with `mask` at their slot, `fill` elsewhere."""
    return jnp.full((p,), fill, v.dtype).at[jnp.where(mask, slot, p)].set(v, mode="drop")


def merge_all(pool, slot, queue, has_inbox, inbox_age, extra, dest, order, m_age, payloads):
    """`queue=all`: each queuing node's inbox becomes the age-weighted mean of its old inbox
    and every message for it not consumed (`extra` [K] bool; weights age + 1e-6, so equal
    weights when all ages are 0), summed in `order` (arrival, sender, slot); its age is the max.
    dest [K] = receiver (N: none), payloads [K, ...] stored models (None: no models). In
    float32 over the stored values, stored back; dense over the pool's P rows. Returns (pool,
    inbox_age [N])."""
    n, p = slot.shape[0], rows_in(pool)
    wq = jnp.where(extra, m_age + 1e-6, 0.0)
    w_old = jnp.where(has_inbox, inbox_age + 1e-6, 0.0)
    tot = w_old + jnp.zeros((n,)).at[dest].add(wq, mode="drop")
    # per pool row (a queuing node's slot): every extra message goes to a queuing node
    dest_s = jnp.where(dest < n, jnp.where(queue, slot, p)[jnp.minimum(dest, n - 1)], p)
    w_old_s, tot_s = (by_slot(v, slot, queue, p) for v in (w_old, tot))

    def bcast(v, x):
        return v.reshape((-1,) + (1,) * (x.ndim - 1))

    def agg(old, pb):
        add = (
            jnp.zeros_like(old).at[dest_s[order]].add(bcast(wq[order], pb) * pb[order], mode="drop")
        )
        den = jnp.where(tot_s > 0, tot_s, 1.0)
        return (bcast(w_old_s, old) * old + add) / bcast(den, old)

    if payloads is not None:  # None: system-only, no models
        new = jax.tree.map(agg, floats_tree(pool), floats_tree(payloads))
        new = jax.tree.map(lambda v, o: store(v, view(o).dtype), new, pool)
        rows = by_slot(queue, slot, queue, p, False)
        pool = jax.tree.map(lambda x, y: jnp.where(bcast(rows, x), x, y), new, pool)
    a_new = jnp.full((n,), -jnp.inf).at[dest].max(jnp.where(extra, m_age, -jnp.inf), mode="drop")
    age = jnp.where(queue, jnp.maximum(jnp.where(has_inbox, inbox_age, 0.0), a_new), inbox_age)
    return pool, age
