"""The in-memory dataset type every loader returns, and the stratified train/test split."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset held in host memory.

    Shapes (n = train examples, t = test examples, T = sequence length for text):
      x_train: [n, *input_shape] float32 features, or int32 token ids for text
      y_train: [n] int32 class ids, or [n, T] int32 next-token ids for text
      x_test:  [t, *input_shape], same dtype as x_train
      y_test:  [t] or [t, T], same dtype as y_train
      groups_train: [n] int32 natural user id (e.g. the speaker), or None
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    groups_train: np.ndarray | None = None

    def __post_init__(self) -> None:
        n, t = len(self.x_train), len(self.x_test)
        if len(self.y_train) != n or len(self.y_test) != t:
            raise ValueError(f"{self.name}: x/y lengths differ ({n}/{len(self.y_train)}, ...)")
        if tuple(self.x_train.shape[1:]) != tuple(self.input_shape):
            raise ValueError(f"{self.name}: x_train {self.x_train.shape} vs {self.input_shape}")
        if self.groups_train is not None and len(self.groups_train) != n:
            raise ValueError(f"{self.name}: groups_train has {len(self.groups_train)} != {n}")

    @property
    def num_train(self) -> int:
        return int(len(self.x_train))

    @property
    def num_test(self) -> int:
        return int(len(self.x_test))

    @property
    def is_sequence(self) -> bool:
        """True when targets are per-position ([n, T]) rather than one class per example."""
        return self.y_train.ndim == 2


def stratified_split(y: np.ndarray, test_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a random ``test_frac`` share goes to test. Returns sorted (train_idx, test_idx).

    y: [n] int labels. Deterministic in ``seed``; each class keeps at least one train example.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)  # [n_c]
        k = min(int(round(test_frac * len(members))), len(members) - 1)
        test_parts.append(rng.permutation(members)[:k])
    test_idx = np.sort(np.concatenate(test_parts))
    train_mask = np.ones(len(y), dtype=bool)
    train_mask[test_idx] = False
    return np.flatnonzero(train_mask), test_idx
