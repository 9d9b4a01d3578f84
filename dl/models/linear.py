"""Vector models: softmax regression and a ReLU multilayer perceptron.

`LogReg` is the multinomial logistic regression of Hegedus et al., "Decentralized learning
works: an empirical comparison of gossip learning and federated learning" (JPDC 2021), which
trains a linear model per node; for two classes it still emits two logits so every model in
`dl` shares one softmax cross-entropy loss. `MLP` defaults to the 2x200 ReLU network of
McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data"
(AISTATS 2017, "2NN"). Both flatten any input shape [B, ...] to [B, D].
"""

from __future__ import annotations

import flax.linen as nn
import jax


class LogReg(nn.Module):
    """Softmax regression: one Dense layer, [B, ...] -> [B, num_classes] logits."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(self.num_classes, name="dense")(x)


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
