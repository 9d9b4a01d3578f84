"""FedBuff's server rule (Nguyen et al., "Federated Learning with Buffered Asynchronous
Aggregation", AISTATS 2022).

The client delta `d = w_tau - y` enters a buffer with weight s(k); after K buffered updates
`w <- w - eta_g * buffer / K`, the version advances by one and the buffer empties.
"""

import jax
import jax.numpy as jnp


def fedbuff_step(st, start, model, take, s, spec, with_params=True):
    """One upload under FedBuff. st: ServerState, start/model: pytrees (the downloaded and the
    trained model), take: [] bool accepted, s: [] f32 staleness weight. Returns the new state."""
    count = st.buffered + take.astype(jnp.int32)
    flush = count >= spec.buffer_k
    params, buffer = st.params, st.buffer
    if with_params:
        w = jnp.where(take, s, 0.0)
        buffer = jax.tree.map(
            lambda b, x0, y: jnp.where(take, b + w * (x0 - y), b), buffer, start, model
        )
        scale = spec.server_lr / spec.buffer_k
        params = jax.tree.map(lambda x, b: jnp.where(flush, x - scale * b, x), params, buffer)
        buffer = jax.tree.map(lambda b: jnp.where(flush, jnp.zeros_like(b), b), buffer)
    return st.replace(
        params=params,
        buffer=buffer,
        buffered=jnp.where(flush, 0, count),
        version=st.version + flush.astype(jnp.int32),
    )
