"""FedAvg's server rules: the pseudo-gradient from the K clients' models.

`server_rule` (ALGORITHMS.md §1.5): `weighted` (default, McMahan et al.), `dais` and `jpdc`
(Hegedus, Danner, Jelasity, DAIS 2019 / JPDC 2021, from ormandi/Gossip-Learning-Framework branch
`privacy`). `upload_frac = s` (§1.4): a client uploads a fraction s of its delta. A leaf with
>= 2 axes is a weight matrix (last axis: output), else a bias.
Notes: docs/NOTES.md#dlrulesfedavgpy
"""

import math

import jax
import jax.numpy as jnp

SERVER_RULES = ("weighted", "dais", "jpdc")


def sent_count(d: int, s: float) -> int:
    """Weights per output column a client sends: floor(s d), at least 1 (DAIS 2019 code)."""
    return max(1, min(d, math.floor(s * d + 1e-9)))


def fixed_count_masks(key, like, s: float):
    """[K, ...] bool masks over client-stacked leaves: for a weight leaf [K, ..., C] (>= 2 axes
    after K) exactly `sent_count(d, s)` of the d weights of every (client, column), uniform
    without replacement; bias leaves ([K] or [K, C]) all True."""
    leaves, tdef = jax.tree.flatten(like)
    out = []
    for i, x in enumerate(leaves):
        if x.ndim < 3:
            out.append(jnp.ones(x.shape, bool))
            continue
        k, c = x.shape[0], x.shape[-1]
        d = math.prod(x.shape[1:-1])
        u = jax.random.uniform(jax.random.fold_in(key, i), (k, d, c))
        rank = jnp.argsort(jnp.argsort(u, axis=1), axis=1)  # [K, d, C] rank within a column
        out.append((rank < sent_count(d, s)).reshape(x.shape))
    return jax.tree.unflatten(tdef, out)


def sparse_mean_delta(deltas, masks, ok, rule: str, s: float):
    """The master's step from the clients' deltas (local - global) [K, ...] under `rule`
    (`dais` or `jpdc`, module doc); `ok` [K] bool marks the clients whose upload arrived."""
    n = jnp.maximum(ok.sum(), 1).astype(jnp.float32)

    def leaf(dx, m):
        live = ok.reshape((-1,) + (1,) * (dx.ndim - 1))
        sent = m & live  # [K, ...]
        if dx.ndim < 3:  # bias: always sent, plain mean
            return jnp.where(live, dx, 0.0).sum(0) / n
        d = math.prod(dx.shape[1:-1])
        frac = sent_count(d, s) / d
        if rule == "dais":
            return jnp.where(sent, dx / frac, 0.0).sum(0) / n
        got = sent.sum(0)  # [...] clients that sent each coordinate
        mean = jnp.where(sent, dx, 0.0).sum(0) / jnp.maximum(got, 1)
        return mean / (1.0 - (1.0 - frac) ** n)

    return jax.tree.map(leaf, deltas, masks)


def make_pseudo_gradient(spec):
    """The server rule: `aggregate(params, new [K, ...], w [K] f32, ok [K] bool, rkey)` -> the
    pseudo-gradient (global - aggregated) under `spec.server_rule` and `spec.upload_frac`
    (a FedAvgSpec)."""

    def aggregate(params, new, w, chosen_ok, rkey):
        wsum = jnp.maximum(w.sum(), 1.0)
        if spec.server_rule != "weighted":
            deltas = jax.tree.map(lambda x, p: x - p, new, params)
            masks = fixed_count_masks(jax.random.fold_in(rkey, 2), new, spec.upload_frac)
            step = sparse_mean_delta(deltas, masks, chosen_ok, spec.server_rule, spec.upload_frac)
            pseudo_grad = jax.tree.map(lambda a: -a, step)
        elif spec.upload_frac < 1.0:
            # each client uploads a random coordinate subset of its delta (Konecny et al.
            # 2016; Hegedus et al. 2019 compress FL uploads this way); the server averages
            # each coordinate over the clients that sent it
            mkey = jax.random.fold_in(rkey, 2)
            leaves, tdef = jax.tree.flatten(new)
            masks = jax.tree.unflatten(
                tdef,
                [
                    jax.random.bernoulli(jax.random.fold_in(mkey, i), spec.upload_frac, x.shape)
                    for i, x in enumerate(leaves)
                ],
            )

            def coord_avg(p, x, m):
                wm = m * w.reshape((-1,) + (1,) * (x.ndim - 1))
                tot = wm.sum(0)
                got = (wm * (p - x)).sum(0) / jnp.where(tot > 0, tot, 1.0)
                return jnp.where(tot > 0, got, 0.0)

            pseudo_grad = jax.tree.map(
                lambda p, x, m: coord_avg(p, x, m.astype(jnp.float32)), params, new, masks
            )
        else:
            avg = jax.tree.map(lambda p: jnp.tensordot(w, p, axes=1) / wsum, new)
            pseudo_grad = jax.tree.map(lambda p, a: p - a, params, avg)
        return pseudo_grad

    return aggregate
