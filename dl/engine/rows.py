"""Row-sparse model work: touch only the node rows that change in a quantum (issue 17).

A gossip quantum merges the models of the nodes that receive and queues the models of the
nodes that are busy: a few per cent of N per quantum (about N x quantum / period x the online
share). Writing every row with a select (`where(mask, new, old)` over [N, ...]) costs N rows of
reads and writes whatever the traffic; here the selected rows are gathered `c` at a time in a
`lax.fori_loop` whose trip count is ceil(selected / c) (traced), computed on, and scattered
back, so the work is proportional to the rows selected (padded to a multiple of `c`) and no
[N, ...] temporary is built. Each row is computed by the same element-wise operations as the
dense form, so results are bit-identical (pinned by tests/test_rows.py and scripts/digests.py).
"""

import jax
import jax.numpy as jnp

from dl.arrays import get_rows, put_rows


def row_chunk(n: int, per_quantum: float, floor: int = 8) -> int:
    """Static rows per pass: about a quarter of the expected selections per quantum (so the
    padding stays small), at least `floor`, at most n."""
    return max(1, min(n, max(floor, -(-int(per_quantum) // 4))))


def take_rows(tree, idx):
    """tree [N, ...] -> [c, ...] rows idx [c] (indices >= N, the padding, read row N - 1)."""

    def one(p):
        return get_rows(p, jnp.minimum(idx, p.shape[0] - 1))

    return jax.tree.map(one, tree)


def set_rows(tree, idx, rows):
    """tree [N, ...] with rows idx [c] set to rows [c, ...] (indices >= N are dropped)."""
    return jax.tree.map(lambda p, v: put_rows(p, idx, v), tree, rows)


def for_rows(mask, c: int, carry, body):
    """Runs `carry = body(carry, idx [c] i32)` over the rows where `mask` [N] bool is set, in
    ascending order, `c` at a time; idx is padded with N (past the last row), which
    `take_rows` clamps and `set_rows` drops. Passes: ceil(mask.sum() / c), none if empty."""
    n = mask.shape[0]
    c = max(1, min(int(c), n))
    sel = jnp.nonzero(mask, size=-(-n // c) * c, fill_value=n)[0].astype(jnp.int32)
    count = mask.sum()

    def one(i, cr):
        return body(cr, jax.lax.dynamic_slice(sel, (i * c,), (c,)))

    return jax.lax.fori_loop(0, (count + c - 1) // c, one, carry)


def update_rows(tree, mask, c: int, fn):
    """`tree` [N, ...] with each row i where `mask` replaced by `fn(idx [c], now) -> [c, ...]`,
    `now` the tree so far (its rows idx are still the original ones: each row is replaced once;
    reading them from `now`, not from a captured `tree`, lets XLA update in place). fn sees
    the padded indices; its rows for padding are dropped."""

    def body(t, idx):
        return set_rows(t, idx, fn(idx, t))

    return for_rows(mask, c, tree, body)
