"""Vector models: softmax regression and a ReLU multilayer perceptron.

`LogReg`: the multinomial logistic regression of Hegedus et al. (JPDC 2021), two logits even for
two classes; `one_vs_all=True` is the papers' own per-class binary model ([B, C, 2] logits) and
`zero_init=True` their zero start. `MLP`: the 2x200 "2NN" of McMahan et al. (AISTATS 2017).
Both flatten [B, ...] to [B, D].
Notes: docs/NOTES.md#dlmodelslinearpy
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl.models.small_dot import small_dot_general


class LogReg(nn.Module):
    """Softmax regression: one Dense layer, [B, ...] -> [B, num_classes] logits; with
    `one_vs_all`, [B, num_classes, 2] binary logits (0, z_c) (module doc)."""

    num_classes: int
    one_vs_all: bool = False
    zero_init: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        init = {"kernel_init": nn.initializers.zeros} if self.zero_init else {}
        z = nn.Dense(self.num_classes, name="dense", dot_general=small_dot_general, **init)(x)
        if not self.one_vs_all:
            return z
        return jnp.stack([jnp.zeros_like(z), z], axis=-1)  # [B, C, 2]


class MLP(nn.Module):
    """ReLU perceptron with `hidden` layer widths, [B, ...] -> [B, num_classes] logits."""

    num_classes: int
    hidden: tuple[int, ...] = (200, 200)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.hidden):
            x = nn.relu(nn.Dense(width, name=f"dense{i + 1}")(x))
        return nn.Dense(self.num_classes, name="out")(x)
