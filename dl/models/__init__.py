"""Models for `dl`: flax.linen modules mapping a batch of inputs to logits.

See `registry` (names, `make_model`, param helpers), `flops` (analytic FLOPs), `conv`
(the custom-VJP convolution for fast CPU training inside `lax.scan` / `lax.map`).
"""

from dl.models.cnn import CNNFemnist, CNNMnist, CNNSmall
from dl.models.conv import Conv2D, conv2d
from dl.models.flops import model_flops_per_example
from dl.models.linear import MLP, LogReg
from dl.models.registry import (
    MODELS,
    ModelSpec,
    init_params,
    make_model,
    model_bytes,
    param_count,
)
from dl.models.rnn import CharGRU, CharLSTM

__all__ = [
    "MODELS",
    "MLP",
    "CNNFemnist",
    "CNNMnist",
    "CNNSmall",
    "CharGRU",
    "CharLSTM",
    "Conv2D",
    "LogReg",
    "ModelSpec",
    "conv2d",
    "init_params",
    "make_model",
    "model_bytes",
    "model_flops_per_example",
    "param_count",
]
