"""Vector models: softmax regression and a ReLU multilayer perceptron.

`LogReg` is the multinomial logistic regression of Hegedus et al., "Decentralized learning
works: an empirical comparison of gossip learning and federated learning" (JPDC 2021), which
trains a linear model per node; for two classes it still emits two logits so every model in
`dl` shares one softmax cross-entropy loss. `MLP` defaults to the 2x200 ReLU network of
McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017, "2NN"). Both flatten any input shape [B, ...] to [B, D].

`LogReg(one_vs_all=True)` is the papers' own model (DAIS 2019 / JPDC 2021, the authors'
`MergeableOvsA` of binary `LogisticRegression`s): one binary logistic regression per class,
z_c = x . w_c + b_c, predicted class argmax_c z_c. It emits [B, C, 2] binary logits (0, z_c)
per class, which `dl.train.loss` reads as C independent sigmoid losses (the softmax of (0, z) is
the sigmoid of z). `zero_init=True` starts every weight and bias at 0, as the papers do.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


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
        z = nn.Dense(self.num_classes, name="dense", **init)(x)  # [B, C]
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
