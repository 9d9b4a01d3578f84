"""Softmax cross-entropy and accuracy for class labels ([B]) and sequence labels ([B, T]),
and the one-vs-all logistic loss of the gossip-learning papers.

One-vs-all (Hegedus et al., DAIS 2019 / JPDC 2021; `dl.models.linear.LogReg(one_vs_all=True)`):
logits [B, C, 2] = (0, z_c) per class against labels [B] (two more axes than the labels). The
loss of an example is the sum over classes of the binary logistic loss of z_c with target
1[y = c], i.e. softplus(z_c) - 1[y = c] z_c, so each class's weights get the gradient
(sigmoid(z_c) - 1[y = c]) x of their own binary model; the prediction is argmax_c z_c.
Notes: docs/NOTES.md#dltrainlosspy
"""

import jax
import jax.numpy as jnp


def is_one_vs_all(logits: jnp.ndarray, labels: jnp.ndarray) -> bool:
    """True for one-vs-all binary logits [..., C, 2] against labels [...]."""
    return logits.ndim == labels.ndim + 2 and logits.shape[-1] == 2


def ova_loss_and_correct(logits: jnp.ndarray, labels: jnp.ndarray):
    """logits [..., C, 2], labels [...] int -> (sum over classes of binary logistic losses,
    0/1 correctness), each [prod(...)]."""
    c = logits.shape[-2]
    z = (logits[..., 1] - logits[..., 0]).reshape(-1, c)  # [B, C] binary scores
    labels = labels.reshape(-1)
    target = jax.nn.one_hot(labels, c, dtype=z.dtype)  # [B, C]
    loss = (jax.nn.softplus(z) - target * z).sum(-1)
    correct = (jnp.argmax(z, axis=-1) == labels).astype(jnp.float32)
    return loss, correct


def xent_and_correct(logits: jnp.ndarray, labels: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-label loss and 0/1 correctness, flattened over every leading axis.

    logits: [..., C]; labels: [...] int. Returns two arrays of shape [prod(...)]. One-vs-all
    logits [..., C, 2] give the summed binary logistic loss (module doc).
    """
    if is_one_vs_all(logits, labels):
        return ova_loss_and_correct(logits, labels)
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    loss = xent_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return loss, correct


def xent_integer_labels(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """logits [B, C], labels [B] in [0, C) -> [B] softmax cross-entropy, as optax's
    `softmax_cross_entropy_with_integer_labels` (logsumexp minus the label's logit) but with
    the label's logit read through a one-hot product instead of `take_along_axis`: the same
    sum (the other terms are exact zeros; XLA may fuse it into other last bits), and its
    gradient is a product, not a scatter-add (one per local step under vmap)."""
    picked = (jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype) * logits).sum(-1)
    return jax.nn.logsumexp(logits, axis=-1) - picked


def mean_xent(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Mean loss over all labels of a batch (scalar)."""
    loss, _ = xent_and_correct(logits, labels)
    return loss.mean()
