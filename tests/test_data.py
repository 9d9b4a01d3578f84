"""Data root resolution, dataset loaders (real files when present) and the IDX parser."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from dl.data import load_dataset, partition, require_file, resolve_data_root
from dl.data.idx import parse_idx, read_idx
from dl.data.shakespeare import VOCAB, decode, encode, split_speakers
from dl.errors import ConfigError, DataError


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- data root


def test_explicit_root_must_exist(tmp_path: Path) -> None:
    assert resolve_data_root(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(DataError) as err:
        resolve_data_root(tmp_path / "nope")
    assert "nope" in one_line(err) and "does not exist" in str(err.value)


def test_env_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DL_DATA_ROOT", str(tmp_path))
    assert resolve_data_root(None) == tmp_path.resolve()
    monkeypatch.setenv("DL_DATA_ROOT", str(tmp_path / "gone"))
    with pytest.raises(DataError, match="DL_DATA_ROOT"):
        resolve_data_root(None)


def test_require_file_names_file_and_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        require_file(None, "fashion_mnist", "train-images-idx3-ubyte.gz")
    assert "fetch_data.py fashion_mnist" in one_line(err)
    with pytest.raises(DataError) as err:
        require_file(tmp_path, "spambase", "spambase.data")
    assert str(tmp_path / "spambase" / "spambase.data") in one_line(err)
    assert "fetch_data.py spambase" in str(err.value)


@pytest.mark.parametrize("name", ["spambase", "pendigits", "fmnist", "shakespeare"])
def test_missing_files_raise_data_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(name, tmp_path)
    assert str(tmp_path) in one_line(err)
    with pytest.raises(DataError):
        load_dataset(name, None)


def test_unknown_dataset_and_option() -> None:
    with pytest.raises(ConfigError, match="digits, spambase, pendigits, fmnist, shakespeare"):
        load_dataset("cifar10", None)
    with pytest.raises(ConfigError, match="seq_len"):
        load_dataset("digits", None, seq_len=3)


# ---------------------------------------------------------------- loaders


def test_digits_embedded_and_fixed_split() -> None:
    ds = load_dataset("digits", None)
    assert (ds.num_train, ds.num_test) == (1438, 359)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.input_shape == (64,) and ds.num_classes == 10 and ds.groups_train is None
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0 and ds.x_train.max() > 0.9
    test_share = np.bincount(ds.y_test, minlength=10) / (
        np.bincount(ds.y_test, minlength=10) + np.bincount(ds.y_train, minlength=10)
    )
    assert np.all(np.abs(test_share - 0.2) < 0.02)  # stratified
    again = load_dataset("digits", None)
    assert np.array_equal(ds.x_test, again.x_test) and np.array_equal(ds.y_train, again.y_train)


@pytest.mark.needs_data("spambase")  # tests/conftest.py: skip, or fail in CI
def test_spambase(data_root: Path) -> None:
    ds = load_dataset("spambase", data_root)
    assert ds.num_train + ds.num_test == 4601 and ds.num_test == 460
    assert ds.x_train.shape == (ds.num_train, 57) and ds.x_train.dtype == np.float32
    assert set(np.unique(ds.y_train)) == {0, 1} and ds.num_classes == 2
    assert np.allclose(ds.x_train.mean(0), 0, atol=1e-4)
    assert np.allclose(ds.x_train.std(0), 1, atol=1e-3)
    assert np.bincount(np.concatenate([ds.y_train, ds.y_test])).tolist() == [2788, 1813]


@pytest.mark.needs_data("pendigits")
def test_pendigits(data_root: Path) -> None:
    ds = load_dataset("pendigits", data_root)
    assert (ds.num_train, ds.num_test) == (7494, 3498)
    assert ds.x_train.shape == (7494, 16) and ds.input_shape == (16,)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert np.array_equal(np.unique(ds.y_test), np.arange(10))


@pytest.mark.needs_data("fashion_mnist")
def test_fmnist(data_root: Path) -> None:
    ds = load_dataset("fmnist", data_root)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert abs(float(ds.x_train.mean()) - 0.286) < 0.001  # the known Fashion-MNIST pixel mean
    assert np.all(np.bincount(ds.y_train) == 6000) and np.all(np.bincount(ds.y_test) == 1000)


@pytest.mark.needs_data("tiny_shakespeare")
def test_shakespeare_real(data_root: Path) -> None:
    ds = load_dataset("shakespeare", data_root)
    assert ds.x_train.dtype == np.int32 and ds.x_train.shape[1:] == (80,)
    assert ds.y_train.shape == ds.x_train.shape and ds.num_classes == 65 == len(VOCAB)
    assert np.array_equal(ds.x_train[:, 1:], ds.y_train[:, :-1])  # next-character targets
    assert ds.groups_train is not None and np.all(np.diff(ds.groups_train) >= 0)
    speakers = int(ds.groups_train.max()) + 1
    assert 100 <= speakers <= 200  # 142 speakers have >= 1000 characters
    assert ds.num_test >= speakers  # at least one test window per speaker
    assert decode(ds.x_train[0]).startswith("Before we proceed any further")
    nd = partition(ds, speakers, "natural", seed=0)
    assert np.array_equal(nd.counts, np.bincount(ds.groups_train))
    short = load_dataset("shakespeare", data_root, seq_len=20, min_chars=100)
    assert short.input_shape == (20,) and short.groups_train.max() + 1 > speakers


def test_shakespeare_parser(tmp_path: Path) -> None:
    text = (
        "First Citizen:\nBefore we proceed.\n\nAll:\nSpeak, speak.\n\n"
        "Said without a header, by All.\n\nFIRST  citizen:\nAgain~\n"
    )
    speeches = split_speakers(text)
    assert list(speeches) == ["FIRST CITIZEN", "ALL"]
    assert speeches["ALL"] == "Speak, speak.\nSaid without a header, by All.\n"
    assert speeches["FIRST CITIZEN"] == "Before we proceed.\nAgain~\n"
    assert decode(encode("Again~")) == "Again "  # unknown characters map to the space
    (tmp_path / "tiny_shakespeare").mkdir()
    (tmp_path / "tiny_shakespeare" / "input.txt").write_text(text)
    ds = load_dataset("shakespeare", tmp_path, seq_len=4, min_chars=10)
    # FIRST CITIZEN: 26 chars -> 6 windows (5 train, 1 test); ALL: 45 chars -> 11 (10 + 1)
    assert ds.groups_train.tolist() == [0] * 5 + [1] * 10 and ds.num_test == 2
    assert decode(ds.x_train[0]) == "Befo" and decode(ds.y_train[0]) == "efor"
    with pytest.raises(DataError, match="min_chars"):
        load_dataset("shakespeare", tmp_path, seq_len=4, min_chars=1000)


# ---------------------------------------------------------------- IDX


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.tobytes()


def write_fmnist(root: Path, n: int = 5) -> Path:
    """A tiny well-formed Fashion-MNIST folder (n train, n test) under ``root``."""
    folder = root / "fashion_mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lbl = np.arange(n, dtype=np.uint8) % 10
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(img)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(lbl)))
    return folder


def test_parse_idx_roundtrip() -> None:
    a = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    out = parse_idx(idx_bytes(a, 0x0C))
    assert out.shape == (2, 3, 4) and out.dtype == np.int32 and np.array_equal(out, a)


def test_fmnist_loader_on_synthetic_files(tmp_path: Path) -> None:
    write_fmnist(tmp_path)
    ds = load_dataset("fmnist", tmp_path)
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.y_test.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "corrupt, reason",
    [
        (lambda gz, raw: gz[: len(gz) // 2], "corrupt IDX"),  # truncated gzip stream
        (lambda gz, raw: gzip.compress(raw[:-100]), "truncated"),  # short payload
        (lambda gz, raw: gzip.compress(raw + b"\0"), "trailing"),
        (lambda gz, raw: gzip.compress(b"\x01\x00" + raw[2:]), "bad magic"),
        (lambda gz, raw: gzip.compress(raw[:2] + b"\x07" + raw[3:]), "dtype"),
        (lambda gz, raw: b"not a gzip file at all", "corrupt IDX"),
    ],
)
def test_corrupt_idx_names_file(tmp_path: Path, corrupt, reason: str) -> None:
    folder = write_fmnist(tmp_path)
    path = folder / "train-images-idx3-ubyte.gz"
    gz = path.read_bytes()
    path.write_bytes(corrupt(gz, gzip.decompress(gz)))
    with pytest.raises(DataError) as err:
        load_dataset("fmnist", tmp_path)
    assert str(path) in one_line(err) and reason in str(err.value)


@pytest.mark.needs_data("fashion_mnist")
def test_truncated_real_idx(tmp_path: Path, data_root: Path) -> None:
    src = data_root / "fashion_mnist" / "t10k-labels-idx1-ubyte.gz"
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(src.read_bytes()[:3000])
    with pytest.raises(DataError) as err:
        read_idx(bad)
    assert str(bad) in one_line(err)


def test_label_count_mismatch(tmp_path: Path) -> None:
    folder = write_fmnist(tmp_path)
    lbl = np.zeros(4, dtype=np.uint8)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(lbl)))
    with pytest.raises(DataError, match="t10k-labels"):
        load_dataset("fmnist", tmp_path)


def test_malformed_csv_names_file(tmp_path: Path) -> None:
    (tmp_path / "spambase").mkdir()
    bad = tmp_path / "spambase" / "spambase.data"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError) as err:
        load_dataset("spambase", tmp_path)
    assert str(bad) in one_line(err)


# ---------------------------------------------------------------- missing data in CI


def _pytest_spambase(tmp_path: Path, **env: str):
    """Runs test_spambase in a child pytest with the data root at an empty directory."""
    import os
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    child = {k: v for k, v in os.environ.items() if k != "DL_REQUIRE_DATA"}
    child |= {"DL_DATA_ROOT": str(empty), **env}
    test = f"{Path(__file__).resolve()}::test_spambase"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfs", test],
        capture_output=True,
        text=True,
        env=child,
        timeout=300,
        cwd=Path(__file__).resolve().parents[1],
    )


def test_missing_data_skips_locally_and_fails_when_required(tmp_path: Path) -> None:
    r = _pytest_spambase(tmp_path)
    assert r.returncode == 0 and "1 skipped" in r.stdout, r.stdout[-2000:]
    r = _pytest_spambase(tmp_path, DL_REQUIRE_DATA="1")
    assert r.returncode == 1 and "1 error" in r.stdout, r.stdout[-2000:]  # fails in setup
    assert "missing under" in r.stdout and "spambase" in r.stdout
