"""Masked softmax cross-entropy and accuracy for class labels ([B]) and sequence labels ([B, T])."""

import jax.numpy as jnp
import optax


def xent_and_correct(logits: jnp.ndarray, labels: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-label loss and 0/1 correctness, flattened over every leading axis.

    logits: [..., C]; labels: [...] int. Returns two arrays of shape [prod(...)].
    """
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return loss, correct


def mean_xent(logits: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Mean cross-entropy over all labels of a batch (scalar)."""
    loss, _ = xent_and_correct(logits, labels)
    return loss.mean()
