"""Test-set evaluation of one model or of a stack of node models, in fixed-size batches."""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dl import rng
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


def sample_indices(n: int, examples: int, seed: int) -> np.ndarray:
    """The test examples `make_sample_evaluate` uses: the first `examples` of a permutation."""
    return rng.numpy_rng(seed, rng.EVAL_EXAMPLES).permutation(n)[:examples]


def make_node_eval(evaluate, n: int, k: int, seed: int):
    """Per-node evaluation: test accuracy/loss of a fixed random sample of k node models (mean
    and quantiles) and the consensus distance mean_i ||x_i - mean(x)||^2 over the first n
    (real, unpadded) nodes."""
    k = max(1, min(k, n))
    idx = jnp.asarray(rng.numpy_rng(seed, rng.EVAL_NODES).permutation(n)[:k])

    @jax.jit
    def run(stacked):
        stacked = jax.tree.map(lambda p: p[:n].astype(jnp.float32), stacked)  # drop padding
        sample = jax.tree.map(lambda p: p[idx], stacked)
        acc, loss = jax.lax.map(evaluate, sample)
        mean = jax.tree.map(lambda p: p.mean(0), stacked)
        sq = jax.tree.map(lambda p, m: ((p - m) ** 2).reshape(n, -1).sum(1), stacked, mean)
        return acc, loss, sum(jax.tree.leaves(sq)).mean()

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
