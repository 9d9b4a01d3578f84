"""Every run-level random stream, named: the run seed plus a salt from this table.

Streams inside a jitted chunk derive from the chunk key by event (time, node id); the streams
below are drawn once per run on the host. A salt never changes once results depend on it: a
new stream takes a new salt.
"""

import jax
import numpy as np

# jax streams: jax.random.fold_in(jax.random.key(seed), salt)
GOSSIP_INIT = 12345  # gossip/DWA initial state (token accounts, Cyclon views)
OVERLAY = 5  # the task overlay: node resources and the overlay rounds
TASK_BASE = 1000  # several tasks: task i's training stream is TASK_BASE + i
# numpy streams: np.random.default_rng([seed, salt])
EVAL_NODES = 99  # the node models sampled for per-node evaluation
SERVER_TRACE = 7919  # Markov server up/down times


def key(seed: int, salt: int):
    """The jax key of stream `salt` of run `seed`."""
    return jax.random.fold_in(jax.random.key(int(seed)), salt)


def numpy_rng(seed: int, salt: int) -> np.random.Generator:
    """The numpy generator of stream `salt` of run `seed`."""
    return np.random.default_rng([int(seed), salt])
