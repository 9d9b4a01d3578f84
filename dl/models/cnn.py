"""Image CNNs for 28x28 greyscale inputs (NHWC [B, H, W, C] -> [B, num_classes] logits).

`CNNMnist`: McMahan et al., AISTATS 2017. `CNNFemnist`: LEAF (Caldas et al., 2018), also FedProx's.
`CNNSmall`: the same shape at half the width, the cheap default for Fashion-MNIST on a CPU.
`fast_conv=True` (default) uses `dl.models.conv.Conv2D`, `False` `flax.linen.Conv` (same params).
Notes: docs/NOTES.md#dlmodelscnnpy
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from dl.models.conv import Conv2D


class _TwoConvCNN(nn.Module):
    """conv(k, c1) -> pool -> conv(k, c2) -> pool -> Dense(hidden) -> Dense(num_classes)."""

    num_classes: int
    channels: tuple[int, int] = (32, 64)
    hidden: int = 512
    kernel: int = 5
    fast_conv: bool = True

    def _conv(self, features: int, name: str) -> nn.Module:
        ks = (self.kernel, self.kernel)
        if self.fast_conv:
            return Conv2D(features, kernel_size=ks, padding="SAME", name=name)
        return nn.Conv(features, kernel_size=ks, padding="SAME", name=name)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, features in enumerate(self.channels):
            x = nn.relu(self._conv(features, f"conv{i + 1}")(x))
            x = max_pool_2x2(x)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, name="dense1")(x))
        return nn.Dense(self.num_classes, name="dense2")(x)


class CNNSmall(_TwoConvCNN):
    """5x5 conv 16 -> pool -> 5x5 conv 32 -> pool -> Dense 128 -> Dense C."""

    channels: tuple[int, int] = (16, 32)
    hidden: int = 128


class CNNFemnist(_TwoConvCNN):
    """LEAF / FedProx FEMNIST CNN: 5x5 conv 32 -> pool -> 5x5 conv 64 -> pool -> 2048 -> C."""

    channels: tuple[int, int] = (32, 64)
    hidden: int = 2048


class CNNMnist(_TwoConvCNN):
    """McMahan et al. 2017 MNIST CNN: 5x5 conv 32 -> pool -> 5x5 conv 64 -> pool -> 512 -> C."""

    channels: tuple[int, int] = (32, 64)
    hidden: int = 512


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
    """2x2 / stride-2 VALID max-pool as reshape + max: same values and gradients as
    `nn.max_pool`, ~5x cheaper on XLA:CPU (measured by scripts/bench_train.py's author)."""
    b, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2, :]
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
