"""Analytic forward-pass FLOPs per example, for throughput reports (GFLOP/s).

One multiply-add = 2 FLOPs; only the matrix products of dense, convolution and recurrent layers
count (Kaplan et al., 2020; FedScale's "FLOPs per sample"). A training step costs about 3x the
forward pass. A token model's example is a whole sequence of T tokens.
Notes: docs/NOTES.md#dlmodelsflopspy (per-layer formulas)
"""

from __future__ import annotations

import math
from typing import Any

from dl.models.cnn import _TwoConvCNN
from dl.models.linear import MLP, LogReg
from dl.models.registry import make_model
from dl.models.rnn import CharGRU, CharLSTM


def _dense(n_in: int, n_out: int) -> int:
    return 2 * n_in * n_out


def _cnn_flops(m: _TwoConvCNN, shape: tuple[int, ...]) -> int:
    h, w, c = shape
    total = 0
    for features in m.channels:
        total += 2 * h * w * m.kernel * m.kernel * c * features  # 'SAME', stride 1
        h, w, c = h // 2, w // 2, features  # 2x2 'VALID' max pool
    return total + _dense(h * w * c, m.hidden) + _dense(m.hidden, m.num_classes)


def _rnn_flops(m: CharGRU | CharLSTM, shape: tuple[int, ...]) -> int:
    gates = 3 if isinstance(m, CharGRU) else 4
    per_token, width = 0, m.embed
    for _ in range(m.layers):
        per_token += 2 * gates * (width * m.hidden + m.hidden * m.hidden)
        width = m.hidden
    per_token += _dense(m.hidden, m.vocab_size)
    return shape[0] * per_token


def model_flops_per_example(
    name: str, input_shape: tuple[int, ...], num_classes: int, **kwargs: Any
) -> int:
    """Forward-pass FLOPs for one example of model `name` (kwargs as for `make_model`)."""
    shape = tuple(int(d) for d in input_shape)
    m = make_model(name, shape, num_classes, **kwargs)
    if isinstance(m, LogReg):
        return _dense(math.prod(shape), m.num_classes)
    if isinstance(m, MLP):
        widths = (math.prod(shape), *m.hidden, m.num_classes)
        return sum(_dense(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    if isinstance(m, _TwoConvCNN):
        return _cnn_flops(m, shape)
    if isinstance(m, CharGRU | CharLSTM):
        return _rnn_flops(m, shape)
    raise NotImplementedError(f"no FLOP formula for model '{name}'")
