"""A synthetic classification dataset of any size: Gaussian class means plus Gaussian noise.

For benchmarks and tests that need more examples (so more nodes) than the embedded digits set:
numpy only, nothing downloaded, a pure function of its options (``seed`` is the dataset's own,
fixed apart from the run seed, as the tabular sets fix their split seed). Classes are balanced
exactly: example i has label ``i % classes`` before a seeded shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dl.data.dataset import Dataset
from dl.errors import ConfigError


def _check(
    examples, test_examples, input_shape, classes, separation, noise, seed
) -> tuple[int, ...]:
    """Each bad option is one ConfigError line naming it; returns the shape as a tuple."""
    where = "dataset 'synthetic'"

    def whole(name, v, low):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ConfigError(f"{where}: {name} must be an integer >= {low}, got {v!r}")

    whole("classes", classes, 2)
    whole("examples", examples, classes)
    whole("test_examples", test_examples, classes)
    whole("seed", seed, 0)
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    ok = isinstance(input_shape, Sequence) and not isinstance(input_shape, str)
    if (
        not ok
        or not input_shape
        or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
            for d in input_shape
        )
    ):
        raise ConfigError(
            f"{where}: input_shape must be a non-empty list of positive integers (e.g. [64] or "
            f"[28, 28, 1]), got {input_shape!r}"
        )
    for name, v in (("separation", separation), ("noise", noise)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise ConfigError(f"{where}: {name} must be a finite number >= 0, got {v!r}")
    return tuple(int(d) for d in input_shape)


def _draw(rng: np.random.Generator, means: np.ndarray, n: int, noise: float):
    """Balanced shuffled labels y [n] int32 and x [n, *shape] = means[y] + noise N(0, I)."""
    classes = means.shape[0]
    y = rng.permutation(np.arange(n, dtype=np.int32) % classes).astype(np.int32)  # [n]
    x = rng.standard_normal((n, *means.shape[1:]), dtype=np.float32)  # [n, *shape]
    x *= np.float32(noise)
    x += means[y]
    return x, y


def load_synthetic(
    root: Path | None,
    *,
    examples: int = 10_000,
    test_examples: int = 1_000,
    input_shape: Sequence[int] = (64,),
    classes: int = 10,
    separation: float = 3.0,
    noise: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """``examples`` train and ``test_examples`` test examples of shape ``input_shape``.

    Class c has mean mu_c ~ N(0, separation^2 / D I), D = prod(input_shape), so |mu_c| is
    about ``separation`` whatever the shape (one draw per class, shared by train and test); an
    example of class c is mu_c + noise * N(0, I), float32. ``root`` is unused.
    """
    del root
    shape = _check(examples, test_examples, input_shape, classes, separation, noise, seed)
    rng = np.random.default_rng(seed)
    scale = float(separation) / np.sqrt(np.prod(shape))
    means = (rng.standard_normal((classes, *shape)) * scale).astype(np.float32)  # [C, *shape]
    x_train, y_train = _draw(rng, means, int(examples), float(noise))
    x_test, y_test = _draw(rng, means, int(test_examples), float(noise))
    return Dataset("synthetic", x_train, y_train, x_test, y_test, int(classes), shape)
