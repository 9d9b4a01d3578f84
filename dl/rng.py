"""Every named random stream: the run seed (or a parent key) plus a salt from this table.

Streams inside a jitted chunk derive from the chunk key by event (time, node id, small
sub-stream indices next to their use); the streams below are drawn once per run or are the
named sub-streams shared by several modules. A salt never changes once results depend on it: a
new stream takes a new salt.
"""

import jax
import numpy as np

# jax streams: jax.random.fold_in(jax.random.key(seed), salt)
GOSSIP_INIT = 12345  # gossip/DWA initial state (token accounts, Cyclon views)
OVERLAY = 5  # the task overlay: node resources and the overlay rounds
TASK_BASE = 1000  # several tasks: task i's training stream is TASK_BASE + i
CYCLON_INIT = 77  # from the gossip init key: the Cyclon views' initial contents
DYNAMIC_OVERLAY = 7  # from a quantum's key: kregular_dynamic's fresh overlay
# numpy streams: np.random.default_rng([seed, salt])
EVAL_NODES = 99  # the node models sampled for per-node evaluation
EVAL_EXAMPLES = 98  # the test examples node models are evaluated on (sim.eval_node_examples)
SERVER_TRACE = 7919  # Markov server up/down times
PARTITION_LAYOUT = 7  # np.random.default_rng([PARTITION_LAYOUT, leaf]): the fixed partition
#                       layout of each leaf (run-independent by design, ALGORITHMS §1.4)


def key(seed: int, salt: int):
    """The jax key of stream `salt` of run `seed`."""
    return jax.random.fold_in(jax.random.key(int(seed)), salt)


def numpy_rng(seed: int, salt: int) -> np.random.Generator:
    """The numpy generator of stream `salt` of run `seed`."""
    return np.random.default_rng([int(seed), salt])
