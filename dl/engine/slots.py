"""The fixed-capacity table of work in flight (one row per client session) and host counters.

A slot holds a node that downloaded the server model at `start`, and is due at `finish`: the
moment it finishes download + training + upload, or the moment it goes offline if that comes
first (then `completes` is False and the work is lost; its energy still counts). Capacity C is
the algorithm's max concurrency, so memory is C model copies, not N (none in system-only mode).
"""

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dl.devices.energy_env import TRAFFIC_COUNTERS


@struct.dataclass
class Slots:
    node: jnp.ndarray  # [C] i32 node id, -1 when free
    start: jnp.ndarray  # [C] f32 dispatch time (s)
    finish: jnp.ndarray  # [C] f32 due time (s), +inf when free
    completes: jnp.ndarray  # [C] bool the node stays online until its upload is done
    version: jnp.ndarray  # [C] i32 server version downloaded (tau)
    dispatch_q: jnp.ndarray  # [C] i32 quantum of dispatch (seeds the local-training key)
    params: Any  # pytree [C, ...] model downloaded at dispatch


def empty_slots(params, capacity: int, train: bool = True) -> Slots:
    """C free slots; `train=False` (system-only mode): model leaves are empty placeholders."""
    c = capacity
    return Slots(
        node=jnp.full((c,), -1, jnp.int32),
        start=jnp.zeros((c,), jnp.float32),
        finish=jnp.full((c,), jnp.inf, jnp.float32),
        completes=jnp.zeros((c,), bool),
        version=jnp.zeros((c,), jnp.int32),
        dispatch_q=jnp.zeros((c,), jnp.int32),
        params=jax.tree.map(
            lambda p: jnp.zeros((c,) + p.shape if train else (0,), p.dtype), params
        ),
    )


COUNTERS = TRAFFIC_COUNTERS + (
    "updates_lost",  # client went offline before finishing
    "uploads_server_down",  # upload reached a down server and was lost
    "arrivals_deferred",  # arrivals beyond the per-quantum capacity, processed next quantum
    "dispatched",
    "arrivals",
)


def zero_counters() -> dict:
    return {k: jnp.zeros((), jnp.float32) for k in COUNTERS}
