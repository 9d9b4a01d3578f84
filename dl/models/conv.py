"""A 2-D convolution whose backward pass stays on XLA:CPU's fast convolution path.

Inside `lax.scan` / `lax.map`, autodiff's weight-gradient convolution misses XLA:CPU's fast (Eigen)
kernel (DESIGN.md, "How it must run"); here the forward and both backward convolutions are
`lax.conv_general_dilated` calls in NHWC/HWIO/NHWC. `Conv2D` has the parameter names and default
initialisers of `flax.linen.Conv`, so params are interchangeable.
Notes: docs/NOTES.md#dlmodelsconvpy (the backward maths)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Padding = tuple[tuple[int, int], tuple[int, int]]

_DN = ("NHWC", "HWIO", "NHWC")


def resolve_padding(padding: str | Sequence[tuple[int, int]], kernel_hw: Sequence[int]) -> Padding:
    """Turn 'SAME' / 'VALID' (stride 1) or explicit pairs into ((lo, hi), (lo, hi))."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return ((0, 0), (0, 0))
        if mode == "SAME":
            # Same split as lax.padtype_to_pads for stride 1: the extra pixel goes high.
            pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_hw)
            return pads  # type: ignore[return-value]
        raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs, got {padding!r}")
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    if len(pads) != 2:
        raise ValueError(f"need two (lo, hi) padding pairs, got {padding!r}")
    return pads  # type: ignore[return-value]


def _conv(lhs: jax.Array, rhs: jax.Array, padding: Padding) -> jax.Array:
    return lax.conv_general_dilated(
        lhs, rhs, window_strides=(1, 1), padding=padding, dimension_numbers=_DN
    )


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv2d(x: jax.Array, w: jax.Array, padding: Padding) -> jax.Array:
    return _conv(x, w, padding)


def _conv2d_fwd(x: jax.Array, w: jax.Array, padding: Padding):
    return _conv(x, w, padding), (x, w)


def _conv2d_bwd(padding: Padding, res, dy: jax.Array):
    x, w = res
    kh, kw = w.shape[0], w.shape[1]
    (plo_h, phi_h), (plo_w, phi_w) = padding
    # Input gradient: full correlation of dy with the flipped kernel, I and O swapped.
    w_t = jnp.transpose(jnp.flip(w, axis=(0, 1)), (0, 1, 3, 2))
    dx_pad = ((kh - 1 - plo_h, kh - 1 - phi_h), (kw - 1 - plo_w, kw - 1 - phi_w))
    dx = _conv(dy, w_t, dx_pad)
    # Weight gradient: correlate x ([I, H, W, N] as NHWC) with dy ([Ho, Wo, N, O] as HWIO).
    x_t = jnp.transpose(x, (3, 1, 2, 0))
    dy_t = jnp.transpose(dy, (1, 2, 0, 3))
    dw = jnp.transpose(_conv(x_t, dy_t, padding), (1, 2, 0, 3))
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


def conv2d(
    x: jax.Array, w: jax.Array, padding: str | Sequence[tuple[int, int]] = "SAME"
) -> jax.Array:
    """Stride-1 convolution, x NHWC [B, H, W, I], w HWIO [kh, kw, I, O] -> NHWC [B, Ho, Wo, O].

    Values equal `lax.conv_general_dilated` with the same dimension numbers; the VJP uses two
    NHWC/HWIO convolutions (see the module docstring) instead of autodiff's transposed layouts.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d needs x [B,H,W,C] and w [kh,kw,I,O], got {x.shape}, {w.shape}")
    return _conv2d(x, w, resolve_padding(padding, w.shape[:2]))


def conv2d_reference(
    x: jax.Array, w: jax.Array, padding: str | Sequence[tuple[int, int]] = "SAME"
) -> jax.Array:
    """The same convolution differentiated by plain JAX autodiff (for tests and benchmarks)."""
    return _conv(x, w, resolve_padding(padding, w.shape[:2]))


class Conv2D(nn.Module):
    """Drop-in for `nn.Conv` at stride 1: NHWC input, HWIO `kernel`, optional `bias`.

    Attributes:
      features: output channels.
      kernel_size: (kh, kw).
      padding: 'SAME', 'VALID' or explicit ((lo, hi), (lo, hi)).
      use_bias: add a learned per-channel bias.
    """

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    padding: str | tuple[tuple[int, int], tuple[int, int]] = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kshape = (kh, kw, x.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, kshape, self.param_dtype)
        dtype = jnp.result_type(x.dtype, kernel.dtype)
        y = conv2d(x.astype(dtype), kernel.astype(dtype), self.padding)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            y = y + bias.astype(dtype)
        return y
