"""Test-set evaluation of one model or of a stack of node models, in fixed-size batches."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dl import rng
from dl.arrays import floats
from dl.train.loss import xent_and_correct


def make_evaluate(apply_fn: Callable, x_test: np.ndarray, y_test: np.ndarray, batch: int = 1000):
    """Returns jitted `evaluate(params) -> (accuracy, loss)` over the whole test set.

    The test set is padded to a multiple of `batch` and evaluated with `lax.map` over batches so
    peak memory is one batch of activations; padded rows are masked out.
    """
    n = len(x_test)
    batch = max(1, min(batch, n))
    nb = -(-n // batch)
    pad = nb * batch - n
    xs = np.concatenate([x_test, np.zeros((pad,) + x_test.shape[1:], x_test.dtype)])
    ys = np.concatenate([y_test, np.zeros((pad,) + y_test.shape[1:], y_test.dtype)])
    w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    xs = jnp.asarray(xs.reshape((nb, batch) + x_test.shape[1:]))
    ys = jnp.asarray(ys.reshape((nb, batch) + y_test.shape[1:]))
    ws = jnp.asarray(w.reshape(nb, batch))
    per_row = int(np.prod(y_test.shape[1:], dtype=np.int64))  # labels per example (T for text)

    @jax.jit
    def evaluate(params):
        def one(args):
            xb, yb, wb = args
            loss, correct = xent_and_correct(apply_fn(params, xb), yb)
            wl = jnp.repeat(wb, per_row)
            return jnp.sum(loss * wl), jnp.sum(correct * wl)

        losses, corrects = jax.lax.map(one, (xs, ys, ws))
        denom = n * per_row
        return corrects.sum() / denom, losses.sum() / denom

    return evaluate


def make_sample_evaluate(apply_fn, x_test, y_test, batch: int, examples: int, seed: int):
    """`make_evaluate` over a fixed random sample of `examples` test examples (stream
    `rng.EVAL_EXAMPLES` of the run seed, the same at every evaluation); `examples` <= 0 or >=
    the test set: the whole test set. Node-model evaluation (k models per evaluation) costs k
    test-set passes: a sample of 1,000 of Fashion-MNIST's 10,000 cuts it 10x, for a standard
    error of the mean node accuracy of about 0.5 / sqrt(k x examples)."""
    n = len(x_test)
    if examples <= 0 or examples >= n:
        return make_evaluate(apply_fn, x_test, y_test, batch)
    idx = np.sort(sample_indices(n, examples, seed))
    return make_evaluate(apply_fn, np.asarray(x_test)[idx], np.asarray(y_test)[idx], batch)


def make_node_evaluate(apply_fn, dataset, sim: dict, seed: int):
    """The evaluator of node models for a run's `sim` config (`sim.eval_batch`,
    `sim.eval_node_examples`): `make_sample_evaluate` on `dataset`'s test set."""
    examples = int(sim.get("eval_node_examples", 0))
    return make_sample_evaluate(
        apply_fn, dataset.x_test, dataset.y_test, sim["eval_batch"], examples, seed
    )


def sample_indices(n: int, examples: int, seed: int) -> np.ndarray:
    """The test examples `make_sample_evaluate` uses: the first `examples` of a permutation."""
    return rng.numpy_rng(seed, rng.EVAL_EXAMPLES).permutation(n)[:examples]


DENSE_BYTES = 512 << 20  # node models (as float32) up to this are reduced in one piece


def consensus_distance(stacked, n: int):
    """mean_i ||x_i - mean(x)||^2 over the first n rows of `stacked` [N, ...]. Up to
    `DENSE_BYTES` of float32 models in one piece; beyond, two passes over blocks of nodes
    (sum, then squared distances), so no float32 copy of every node model is made (10,000
    bfloat16 `cnn_small` models are 4.3 GB; a float32 copy and its squares ran out of memory)."""
    row = sum(int(np.prod(p.shape[1:], dtype=np.int64)) for p in jax.tree.leaves(stacked))
    if n * row * 4 <= DENSE_BYTES:
        stacked = jax.tree.map(lambda p: floats(p[:n]), stacked)
        mean = jax.tree.map(lambda p: p.mean(0), stacked)
        sq = jax.tree.map(lambda p, m: ((p - m) ** 2).reshape(n, -1).sum(1), stacked, mean)
        return sum(jax.tree.leaves(sq)).mean()
    b = max(1, min(n, DENSE_BYTES // (8 * row)))
    nb = -(-n // b)

    def block(i):
        """Rows [i b, i b + b) of the first n (the last block overlaps, masked): f32, mask."""
        start = jnp.minimum(i * b, n - b)
        rows = jax.tree.map(lambda p: floats(jax.lax.dynamic_slice_in_dim(p, start, b)), stacked)
        return rows, (start + jnp.arange(b)) >= i * b

    def add(i, tot):
        rows, keep = block(i)
        return jax.tree.map(
            lambda t, r: t + jnp.where(keep.reshape((-1,) + (1,) * (r.ndim - 1)), r, 0).sum(0),
            tot,
            rows,
        )

    zero = jax.tree.map(lambda p: jnp.zeros(p.shape[1:], jnp.float32), stacked)
    mean = jax.tree.map(lambda t: t / n, jax.lax.fori_loop(0, nb, add, zero))

    def dist(i, acc):
        rows, keep = block(i)
        sq = jax.tree.map(lambda r, m: ((r - m) ** 2).reshape(b, -1).sum(1), rows, mean)
        return acc + jnp.where(keep, sum(jax.tree.leaves(sq)), 0.0).sum()

    return jax.lax.fori_loop(0, nb, dist, jnp.zeros((), jnp.float32)) / n


def make_node_eval(evaluate, n: int, k: int, seed: int):
    """Per-node evaluation: test accuracy/loss of a fixed random sample of k node models (mean
    and quantiles) and the consensus distance mean_i ||x_i - mean(x)||^2 over the first n
    (real, unpadded) nodes."""
    k = max(1, min(k, n))
    idx = jnp.asarray(rng.numpy_rng(seed, rng.EVAL_NODES).permutation(n)[:k])

    @jax.jit
    def run(stacked):
        sample = jax.tree.map(lambda p: floats(p[idx]), stacked)  # idx < n
        acc, loss = jax.lax.map(evaluate, sample)
        return acc, loss, consensus_distance(stacked, n)

    def node_eval(stacked) -> dict:
        acc, loss, dist = run(stacked)
        acc, loss = np.asarray(acc), np.asarray(loss)
        q10, q50, q90 = np.quantile(acc, [0.1, 0.5, 0.9])
        return {
            "node_accuracy_mean": float(acc.mean()),
            "node_accuracy_p10": float(q10),
            "node_accuracy_p50": float(q50),
            "node_accuracy_p90": float(q90),
            "node_accuracy_max": float(acc.max()),
            "node_loss_mean": float(loss.mean()),
            "consensus_distance": float(dist),
        }

    return node_eval
