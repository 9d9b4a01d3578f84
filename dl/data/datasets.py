"""The in-memory dataset record and the name -> loader registry.

Every loader returns a :class:`Dataset` of host numpy arrays; nothing is cached on disk and nothing
is downloaded (``scripts/fetch_data.py`` does that, outside the simulator). Splits that the source
does not fix (digits, spambase) use a fixed split seed, independent of the run seed, so every run
of a task sees the same test set.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dl.errors import ConfigError, DataError

DATASET_NAMES: tuple[str, ...] = ("digits", "spambase", "pendigits", "fmnist", "shakespeare")


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


def _registry() -> dict[str, Callable[..., Dataset]]:
    # Imported here: the loader modules import Dataset from this module.
    from dl.data import idx, shakespeare, tabular

    return {
        "digits": tabular.load_digits,
        "spambase": tabular.load_spambase,
        "pendigits": tabular.load_pendigits,
        "fmnist": idx.load_fmnist,
        "shakespeare": shakespeare.load_shakespeare,
    }


def load_dataset(name: str, root: Path | str | None, **options: Any) -> Dataset:
    """Load dataset ``name`` from data root ``root`` (None is fine for ``digits``).

    ``options`` are loader-specific (``shakespeare``: ``seq_len``, ``min_chars``); an option the
    loader does not know is a ConfigError. A missing or malformed file is a DataError.
    """
    loaders = _registry()
    if name not in loaders:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(DATASET_NAMES)}")
    loader = loaders[name]
    known = _keyword_names(loader)
    unknown = sorted(set(options) - known)
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise ConfigError(f"dataset {name!r} has no option(s) {unknown}; valid options: {valid}")
    ds = loader(None if root is None else Path(root), **options)
    check_finite(ds, root)
    return ds


def check_finite(ds: Dataset, root: Path | str | None) -> None:
    """A NaN or inf feature stops with one line naming the dataset's files and the first bad
    entry (it would otherwise surface later as a diverged training run)."""
    for split in ("x_train", "x_test"):
        x = getattr(ds, split)
        if not np.issubdtype(x.dtype, np.floating):
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            where = np.argwhere(bad)[0]
            place = f"example {where[0]}" + (
                f", feature {where[1:].tolist()}" if where.size > 1 else ""
            )
            src = ds.name if root is None else f"{ds.name} under {root}"
            raise DataError(
                f"dataset {src}: {split} holds {int(bad.sum())} non-finite value(s) "
                f"(NaN/inf; first at {place}); fix or re-fetch the data file"
            )


def _keyword_names(fn: Callable[..., Any]) -> set[str]:
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


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
