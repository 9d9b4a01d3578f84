"""The asynchronous server: a batch of arrivals applied strictly in arrival order.

Each upload's staleness k = version - tau is weighed by s(k) (`dl.rules.staleness`), uploads with
k > max_staleness are dropped (FedScale `async_aggregator.py`), and the accepted ones go to the
server rule named by `kind` (`dl.rules.fedasync`, `dl.rules.fedbuff`).

The arrivals of one quantum are applied with a `lax.scan` in (time, node id) order, so several
arrivals in one quantum give bit for bit what one-per-quantum processing gives.
"""

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from dl.errors import ConfigError
from dl.rules.fedasync import fedasync_step
from dl.rules.fedbuff import fedbuff_step
from dl.rules.staleness import check_staleness, staleness_weight

SERVER_RULES = {"fedasync": fedasync_step, "fedbuff": fedbuff_step}


@dataclass(frozen=True)
class AsyncServerSpec:
    kind: str = "fedasync"  # [fedasync, fedbuff]
    alpha: float = 0.6  # FedAsync mixing weight
    staleness: str = "poly"  # [constant, poly, hinge]
    stale_a: float = 0.5
    stale_b: float = 4.0
    max_staleness: int = -1  # drop uploads with k > this; -1 keeps all
    buffer_k: int = 10  # FedBuff K
    server_lr: float = 1.0  # FedBuff eta_g
    hist_bins: int = 32  # staleness histogram bins (last bin collects >= hist_bins - 1)

    def validate(self) -> None:
        if self.kind not in SERVER_RULES:
            raise ConfigError(f"unknown async server kind '{self.kind}' (fedasync, fedbuff)")
        check_staleness(self.staleness, self.stale_a, self.stale_b)
        if not 0.0 < self.alpha <= 1.0:
            raise ConfigError(f"algorithm.alpha must be in (0, 1], got {self.alpha}")
        if self.buffer_k < 1 or self.server_lr <= 0:
            raise ConfigError("algorithm.buffer_k must be >= 1 and algorithm.server_lr > 0")


@struct.dataclass
class ServerState:
    params: Any  # server model pytree
    version: jnp.ndarray  # [] i32 number of server updates so far
    buffer: Any  # FedBuff delta sum, same tree as params (zeros for FedAsync)
    buffered: jnp.ndarray  # [] i32 updates in the buffer
    applied: jnp.ndarray  # [] i32 uploads accepted (FedAsync mixes, FedBuff buffered)
    stale_dropped: jnp.ndarray  # [] i32 uploads dropped for staleness
    hist: jnp.ndarray  # [hist_bins] i32 staleness histogram of accepted uploads (last bin: >=)
    stale_sum: jnp.ndarray  # [] i32 sum of the (unclipped) staleness of accepted uploads


def init_server(params, spec: AsyncServerSpec, train: bool = True) -> ServerState:
    """A fresh server holding a copy of `params` (a chunk consumes its state, never the
    caller's model); `train=False` (system-only mode): the FedBuff buffer is an empty
    placeholder (the server model, one copy, stays: it is the run's unchanged model)."""
    z = lambda: jnp.zeros((), jnp.int32)  # noqa: E731 (one buffer per field: donated state)
    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape if train else (0,), p.dtype), params)
    params = jax.tree.map(jnp.copy, params)
    hist = jnp.zeros((spec.hist_bins,), jnp.int32)
    return ServerState(params, z(), zeros, z(), z(), z(), hist, z())


def staleness_mean(state: ServerState) -> jnp.ndarray:
    """[] f32 mean staleness of the accepted uploads (0 if none). Exact: computed from
    `stale_sum`, not from the histogram, whose last bin clips k >= hist_bins - 1."""
    return state.stale_sum / jnp.maximum(1, state.hist.sum())


def apply_arrivals(
    state: ServerState,
    starts,
    models,
    versions,
    ok,
    spec: AsyncServerSpec,
    with_params=True,
    return_taken=False,
):
    """Applies arrivals [A] in order. starts/models: pytrees [A, ...] (downloaded and trained
    models), versions: [A] i32 server version each client downloaded, ok: [A] bool (real uploads
    that reached the server). With `with_params=False` (system-only mode) only the bookkeeping
    (versions, buffer count, staleness) runs and starts/models may be None.
    Returns the new ServerState, and with `return_taken` also taken [A] bool: the uploads
    accepted (reached and not dropped for staleness)."""

    def step(st: ServerState, arrival):
        start, model, tau, good = arrival
        k = st.version - tau
        fresh = (spec.max_staleness < 0) | (k <= spec.max_staleness)
        take = good & fresh
        s = staleness_weight(spec.staleness, k, spec.stale_a, spec.stale_b)
        bins = jnp.zeros_like(st.hist).at[jnp.clip(k, 0, spec.hist_bins - 1)].add(1)
        hist = st.hist + jnp.where(take, bins, 0)
        stale_sum = st.stale_sum + jnp.where(take, k, 0)
        dropped = st.stale_dropped + (good & ~fresh).astype(jnp.int32)
        applied = st.applied + take.astype(jnp.int32)
        st = SERVER_RULES[spec.kind](st, start, model, take, s, spec, with_params)
        return st.replace(
            applied=applied, stale_dropped=dropped, hist=hist, stale_sum=stale_sum
        ), take

    if not with_params:
        starts = models = jnp.zeros_like(versions)  # placeholders, unused
    state, taken = jax.lax.scan(step, state, (starts, models, versions, ok))
    return (state, taken) if return_taken else state
