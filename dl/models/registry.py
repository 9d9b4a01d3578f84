"""Model registry: names -> flax.linen modules, with input-shape checks and param helpers.

A model maps a batch of inputs to logits: images NHWC [B, H, W, C] -> [B, C]; vectors
[B, ...] -> [B, C] (flattened); token ids int [B, T] -> [B, T, V]. `input_shape` never
includes the batch axis. Mismatches between a model and a dataset are user errors and raise
`ConfigError` with one line naming both (DESIGN.md, "Interfaces users expect").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dl.errors import ConfigError
from dl.models.cnn import CNNFemnist, CNNMnist, CNNSmall
from dl.models.linear import MLP, LogReg
from dl.models.rnn import CharGRU, CharLSTM

InputKind = Literal["vector", "image", "tokens"]

MIN_IMAGE_SIDE = 4  # two 2x2 poolings must leave at least one pixel


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered model: its class, input kind and output-size field."""

    cls: type[nn.Module]
    kind: InputKind
    classes_field: str = "num_classes"


MODELS: dict[str, ModelSpec] = {
    "logreg": ModelSpec(LogReg, "vector"),
    "mlp": ModelSpec(MLP, "vector"),
    "cnn_small": ModelSpec(CNNSmall, "image"),
    "cnn_femnist": ModelSpec(CNNFemnist, "image"),
    "cnn_mnist": ModelSpec(CNNMnist, "image"),
    "char_gru": ModelSpec(CharGRU, "tokens", classes_field="vocab_size"),
    "char_lstm": ModelSpec(CharLSTM, "tokens", classes_field="vocab_size"),
}

_NEEDS = {
    "image": f"image input [H,W,C] with H,W >= {MIN_IMAGE_SIDE}",
    "tokens": "integer token sequences [T]",
}


def _options(cls: type[nn.Module], classes_field: str) -> list[str]:
    skip = {classes_field, "parent", "name"}
    return [f.name for f in fields(cls) if f.init and f.name not in skip]


def _check_input(
    name: str, kind: InputKind, shape: tuple[int, ...], dtype: Any, dataset_name: str | None
) -> None:
    if kind == "vector":
        ok = len(shape) >= 1 and all(d >= 1 for d in shape)
    elif kind == "image":
        ok = len(shape) == 3 and min(shape[:2]) >= MIN_IMAGE_SIDE and shape[2] >= 1
    else:
        ok = len(shape) == 1 and shape[0] >= 1
        ok = ok and (dtype is None or jnp.issubdtype(dtype, jnp.integer))
    if ok:
        return
    needs = _NEEDS.get(kind, "a non-empty input shape")
    gives = f"{np.dtype(dtype).name} {shape}" if dtype is not None and kind == "tokens" else shape
    source = f"dataset '{dataset_name}' gives" if dataset_name else "input shape is"
    raise ConfigError(f"model '{name}' needs {needs}, {source} {gives}")


def _freeze(value: Any) -> Any:
    """Lists (also Hydra ListConfig) -> tuples, so module fields stay hashable."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(_freeze(v) for v in value)
    return value


def make_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    dataset_name: str | None = None,
    input_dtype: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """Build registered model `name` for inputs of `input_shape` (no batch axis).

    `num_classes` is the number of labels (the vocabulary size for char models). Extra
    `kwargs` set model fields (e.g. `hidden=(100,)`, `fast_conv=False`); lists become tuples.
    `dataset_name` and `input_dtype` only sharpen the checks and the error message.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; valid models: {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
    shape = tuple(int(d) for d in input_shape)
    _check_input(name, spec.kind, shape, input_dtype, dataset_name)
    if int(num_classes) < 2:
        raise ConfigError(f"model '{name}' needs num_classes >= 2, got {num_classes}")
    options = _options(spec.cls, spec.classes_field)
    for key in kwargs:
        if key not in options:
            raise ConfigError(
                f"model '{name}' has no option '{key}'; options: {', '.join(options) or 'none'}"
            )
    clean = {k: _freeze(v) for k, v in kwargs.items()}
    try:
        return spec.cls(**{spec.classes_field: int(num_classes)}, **clean)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model '{name}': bad options {clean}: {e}") from None


def init_params(
    model: nn.Module, input_shape: tuple[int, ...], key: jax.Array, dtype_of_input: Any = None
) -> Any:
    """Initialise `model` for one input of `input_shape`; returns the 'params' pytree.

    `dtype_of_input` defaults to int32 for token models and float32 otherwise.
    """
    if dtype_of_input is None:
        dtype_of_input = jnp.int32 if isinstance(model, CharGRU | CharLSTM) else jnp.float32
    x = jnp.zeros((1, *tuple(input_shape)), dtype_of_input)
    return jax.jit(model.init)(key, x)["params"]


def param_count(params: Any) -> int:
    """Total number of scalars in a params pytree."""
    return int(sum(math.prod(np.shape(leaf)) for leaf in jax.tree_util.tree_leaves(params)))


def model_bytes(params: Any) -> int:
    """Size of one model on the wire, in bytes: every parameter sent as float32."""
    return 4 * param_count(params)
