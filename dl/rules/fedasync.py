"""FedAsync's server rule (Xie et al., "Asynchronous Federated Optimization", 2020).

On an accepted upload y from version tau, staleness k = t - tau: `alpha_t = alpha * s(k)`,
`x <- (1 - alpha_t) x + alpha_t y`, and the server version advances by one.
"""

import jax
import jax.numpy as jnp


def fedasync_step(st, start, model, take, s, spec, with_params=True):
    """One upload under FedAsync. st: ServerState, model: pytree (the trained upload; `start`
    unused), take: [] bool accepted, s: [] f32 staleness weight s(k). Returns the new state."""
    del start
    if with_params:
        a = jnp.where(take, spec.alpha * s, 0.0)
        params = jax.tree.map(  # where: a dropped NaN/inf upload must not leak in
            lambda x, y: jnp.where(take, (1.0 - a) * x + a * y, x), st.params, model
        )
        st = st.replace(params=params)
    return st.replace(version=st.version + take.astype(jnp.int32))
