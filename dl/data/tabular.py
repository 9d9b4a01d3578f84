"""Small tabular datasets: sklearn digits (embedded), UCI spambase and UCI pendigits.

All three are headerless numeric CSV with the label in the last column. These are the datasets of
Hegedus et al.'s gossip-vs-FL comparison (spambase, pendigits) and the fast default (digits).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from dl.data.dataset import Dataset, stratified_split
from dl.data.root import fetch_hint, require_file
from dl.errors import DataError

SPLIT_SEED = 0  # fixed: the test set must not depend on the run seed


def read_csv_matrix(path: Path, num_cols: int, folder: str) -> np.ndarray:
    """A headerless numeric CSV as float64 [rows, num_cols]; malformed -> DataError naming it."""
    try:
        data = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)  # [rows, cols]
    except (ValueError, OSError, UnicodeDecodeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        hint = fetch_hint(folder, path.parent.parent)
        raise DataError(f"malformed CSV {path} ({msg}); {hint}") from None
    if data.shape[0] == 0 or data.shape[1] != num_cols:
        raise DataError(
            f"malformed CSV {path}: expected {num_cols} columns, got shape {data.shape}; "
            f"{fetch_hint(folder, path.parent.parent)}"
        )
    return data


def _labels(col: np.ndarray, num_classes: int, path: Path, folder: str) -> np.ndarray:
    """The label column as int32 [rows], checked to be integers in [0, num_classes)."""
    y = col.astype(np.int32)
    if not np.array_equal(y, col) or y.min() < 0 or y.max() >= num_classes:
        raise DataError(
            f"bad labels in {path}: expected integers in [0, {num_classes}); "
            f"{fetch_hint(folder, path.parent.parent)}"
        )
    return y


def _digits_matrix() -> np.ndarray:
    """sklearn's bundled digits.csv.gz as float64 [1797, 65], read without importing sklearn.

    Importing scikit-learn costs seconds; the file is located through the package spec instead,
    with ``sklearn.datasets.load_digits`` as the fallback if the layout ever changes.
    """
    spec = importlib.util.find_spec("sklearn")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return np.concatenate([bunch.data, bunch.target[:, None]], axis=1)


def load_digits(root: Path | None) -> Dataset:
    """sklearn's 8x8 digits (1797 x 64, ships with scikit-learn), /16 to [0,1], 80/20 stratified."""
    data = _digits_matrix()  # [1797, 65]
    x = (data[:, :-1] / 16.0).astype(np.float32)  # [1797, 64]
    y = data[:, -1].astype(np.int32)  # [1797]
    tr, te = stratified_split(y, 0.2, SPLIT_SEED)
    return Dataset("digits", x[tr], y[tr], x[te], y[te], 10, (64,))


def load_spambase(root: Path | None) -> Dataset:
    """UCI spambase (4601 x 57, 2 classes), 90/10 stratified split, train-standardized features."""
    path = require_file(root, "spambase", "spambase.data")
    data = read_csv_matrix(path, 58, "spambase")  # [4601, 58]
    x = data[:, :-1]  # [n, 57] float64
    y = _labels(data[:, -1], 2, path, "spambase")
    tr, te = stratified_split(y, 0.1, SPLIT_SEED)
    mean = x[tr].mean(axis=0)  # [57]
    std = x[tr].std(axis=0)  # [57]
    std = np.where(std > 0, std, 1.0)
    x = ((x - mean) / std).astype(np.float32)
    return Dataset("spambase", x[tr], y[tr], x[te], y[te], 2, (57,))


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets shifted and scaled by the training set's per-feature mean and std (a constant
    feature keeps std 1), as float32; the papers' NORMALIZATION 2 (DAIS 2019 simulator)."""
    mean = x_train.mean(axis=0)  # [D]
    std = x_train.std(axis=0)  # [D]
    std = np.where(std > 0, std, 1.0)
    f = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
    return f(x_train), f(x_test)


def load_pendigits(root: Path | None, *, standardize: bool = False) -> Dataset:
    """UCI pendigits (7494 train / 3498 test x 16 pen coordinates in 0..100), /100 to [0,1];
    `standardize=True`: train-standardized features instead (the gossip papers' setting)."""
    parts = []
    for split in ("tra", "tes"):
        path = require_file(root, "pendigits", f"pendigits.{split}")
        data = read_csv_matrix(path, 17, "pendigits")  # [rows, 17]
        x = data[:, :-1] / 100.0  # [rows, 16] float64
        parts.append((x, _labels(data[:, -1], 10, path, "pendigits")))
    (x_tr, y_tr), (x_te, y_te) = parts
    if standardize:
        x_tr, x_te = _standardize(x_tr, x_te)
    x_tr, x_te = x_tr.astype(np.float32), x_te.astype(np.float32)
    return Dataset("pendigits", x_tr, y_tr, x_te, y_te, 10, (16,))
