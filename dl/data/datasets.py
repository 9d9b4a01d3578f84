"""The in-memory dataset record and the name -> loader registry.

Every loader returns a :class:`Dataset` of host numpy arrays; nothing is cached on disk and nothing
is downloaded (``scripts/fetch_data.py`` does that, outside the simulator). Splits that the source
does not fix (digits, spambase) use a fixed split seed, independent of the run seed, so every run
of a task sees the same test set.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dl.data import idx, shakespeare, synthetic, tabular
from dl.data.dataset import Dataset
from dl.errors import ConfigError, DataError

DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "spambase",
    "pendigits",
    "fmnist",
    "shakespeare",
    "synthetic",
)


def _registry() -> dict[str, Callable[..., Dataset]]:

    return {
        "digits": tabular.load_digits,
        "spambase": tabular.load_spambase,
        "pendigits": tabular.load_pendigits,
        "fmnist": idx.load_fmnist,
        "shakespeare": shakespeare.load_shakespeare,
        "synthetic": synthetic.load_synthetic,
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
