"""Image CNNs for 28x28 greyscale inputs (NHWC [B, H, W, C] -> [B, num_classes] logits).

- `CNNMnist`: the MNIST CNN of McMahan et al., "Communication-Efficient Learning of Deep
  Networks from Decentralized Data" (AISTATS 2017): two 5x5 convolutions with 32 and 64
  channels, each followed by 2x2 max pooling, a 512-unit ReLU layer and a softmax layer;
  1,663,370 parameters for 28x28x1 inputs and 10 classes.
- `CNNFemnist`: the FEMNIST CNN of LEAF (Caldas et al., "LEAF: A Benchmark for Federated
  Settings", 2018, `models/femnist/cnn.py`), also used by FedProx (Li et al., MLSys 2020):
  5x5 conv 32, pool, 5x5 conv 64, pool, Dense 2048, Dense C.
- `CNNSmall`: the same shape at half the width (16/32 channels, Dense 128); the cheap default
  for Fashion-MNIST on a CPU.

All convolutions are stride 1 with 'SAME' padding and ReLU; pooling is 2x2 / stride 2 'VALID'.
With `fast_conv=True` (default) they use `dl.models.conv.Conv2D`, whose custom VJP keeps the
backward pass on XLA:CPU's fast path inside `lax.scan`/`lax.map`; `fast_conv=False` uses
`flax.linen.Conv`. Both give the same parameter tree, so params are interchangeable.
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
