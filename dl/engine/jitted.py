"""A chunk's jitted program takes the node data as an argument and consumes its state (issue 17).

Arrays a jitted function closes over are embedded in its program as constants, so compile
time and compile memory grow with the node data (53 s for 2.3 GB on CPU). Every engine's
`chunk(state, key, t_stop, ...)` is therefore a thin wrapper around one jitted
`run(env, state, key, t_stop, ...)` that receives the node arrays (`env`, a pytree) as an
argument; callers do not change.

The state's large leaves are donated (`donate_argnums`): the new state reuses their buffers, so
a chunk holds one copy of the node models, not two. A state passed to a chunk is consumed: use
only the state it returns (its small leaves, under `min_donate_bytes`, stay valid). Leaves that
share one buffer (a state built with one zeros array in two fields) are copied first, since a
buffer cannot be donated twice.

With the node axis sharded (`dl.sharding`), a state leaf the host rebuilt between chunks (a
drained counter made with `jnp.zeros`) sits on one device while the chunk returned it on the
mesh; the next call then saw a new input sharding and recompiled. Such leaves are placed on the
env's mesh the way `shard_nodes` places them before the call.
"""

import warnings

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding

from dl.sharding import AXIS, shard_nodes


def unalias(tree):
    """`tree` with every jax.Array leaf that shares a buffer with an earlier leaf copied."""
    seen: set = set()

    def one(x):
        if not isinstance(x, jax.Array):
            return x
        keys = [("id", id(x))]
        if x.size > 0:
            try:
                keys.append(("ptr", x.unsafe_buffer_pointer()))
            except Exception:  # several devices, or a key array: the object's identity only
                pass
        if any(k in seen for k in keys):
            return jnp.copy(x)
        seen.update(keys)
        return x

    return jax.tree.map(one, tree)


class EnvChunk:
    """`chunk(state, key, t_stop, *rest) -> state` calling a jitted `run(env, state, key,
    t_stop, *rest)` with `env` (the node arrays) as an argument. With `donate`, the state's
    leaves of at least `min_donate_bytes` (node models, inboxes, payloads on the wire: what
    scales with N) are donated; smaller ones (a server model, counters, ages) are not, so a
    caller may keep them, and a test world of a few nodes runs without donation unless it
    lowers `min_donate_bytes`."""

    def __init__(self, run, env, name: str = "chunk", donate: bool = True):
        self.run, self.env, self.name, self.donate = run, env, name, donate
        self.min_donate_bytes = 1 << 20
        self._jits: dict = {}
        self.mesh, self.n = _node_mesh(env)

    def _placed(self, state):
        """`state` with each leaf that is not on a mesh placed on the env's (node-axis leaves
        split, the rest replicated); unchanged without a mesh."""
        if self.mesh is None:
            return state

        def put(x):
            if not isinstance(x, jax.Array) or isinstance(x.sharding, NamedSharding):
                return x
            return shard_nodes(x, self.mesh, self.n)

        return jax.tree.map(put, state)

    def _split(self, state):
        """(leaves, treedef, indices of the leaves to donate)."""
        leaves, tdef = jax.tree.flatten(state)
        big = tuple(
            i
            for i, x in enumerate(leaves)
            if self.donate and isinstance(x, jax.Array) and x.nbytes >= self.min_donate_bytes
        )
        return leaves, tdef, big

    def _jitted(self, tdef, big: tuple, n: int):
        """The jitted program for states of this structure (one per structure and split)."""
        key = (tdef, big, n)
        if key not in self._jits:
            run, rest_idx = self.run, [i for i in range(n) if i not in set(big)]

            def split_run(env, donated, kept, *args):
                leaves = [None] * n
                for i, x in zip(big, donated):
                    leaves[i] = x
                for i, x in zip(rest_idx, kept):
                    leaves[i] = x
                return run(env, jax.tree.unflatten(tdef, leaves), *args)

            split_run.__name__ = split_run.__qualname__ = self.name  # name in compile events
            self._jits[key] = jax.jit(split_run, donate_argnums=1 if big else ())
        return self._jits[key]

    def _args(self, state):
        leaves, tdef, big = self._split(state)
        donated = [leaves[i] for i in big]
        kept = [x for i, x in enumerate(leaves) if i not in set(big)]
        return self._jitted(tdef, big, len(leaves)), donated, kept

    def __call__(self, state, key, t_stop, *rest):
        fn, donated, kept = self._args(unalias(self._placed(state)))
        if not donated or jax.default_backend() != "cpu":
            return fn(self.env, donated, kept, key, t_stop, *rest)
        with warnings.catch_warnings():
            # the CPU backend may not reuse a donated buffer and warns on every call
            warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
            return fn(self.env, donated, kept, key, t_stop, *rest)

    def lower(self, state, key, t_stop, *rest):
        """The lowered program of a call (`.as_text()`, `.compile()`); consumes nothing."""
        fn, donated, kept = self._args(self._placed(state))
        return fn.lower(self.env, donated, kept, key, t_stop, *rest)

    def _cache_size(self) -> int:
        return sum(f._cache_size() for f in self._jits.values())


def _node_mesh(env):
    """(mesh, padded node count) of the first env leaf split over the node axis; (None, 0)."""
    for x in jax.tree.leaves(env):
        s = getattr(x, "sharding", None)
        if isinstance(s, NamedSharding) and s.mesh.size > 1 and s.spec and s.spec[0] == AXIS:
            return s.mesh, x.shape[0]
    return None, 0
