"""IDX file parser (the MNIST / Fashion-MNIST format) and the Fashion-MNIST loader.

IDX layout: 2 zero bytes, a dtype code byte, a byte with the number of dimensions d, then d
big-endian uint32 sizes, then the array in C order, big-endian. Files may be gzip'd (``.gz``).
Every inconsistency (bad magic, unknown dtype, byte length that does not match the header,
truncated or corrupt gzip) is a DataError that names the file.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from dl.data.dataset import Dataset
from dl.data.root import fetch_hint, require_file
from dl.errors import DataError

IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

FMNIST_DIR = "fashion_mnist"


class IdxFormatError(ValueError):
    """The bytes are not a well-formed IDX array (the reader turns this into a DataError)."""


def parse_idx(buf: bytes) -> np.ndarray:
    """Decode an (uncompressed) IDX buffer into a native-endian array of the header's shape."""
    if len(buf) < 4:
        raise IdxFormatError(f"{len(buf)} bytes, shorter than the 4-byte magic")
    if buf[0] != 0 or buf[1] != 0:
        raise IdxFormatError(f"bad magic 0x{buf[:4].hex()} (expected 0x0000<dtype><ndim>)")
    code, ndim = buf[2], buf[3]
    if code not in IDX_DTYPES:
        raise IdxFormatError(f"bad magic 0x{buf[:4].hex()}: unknown dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise IdxFormatError(f"truncated header: {len(buf)} bytes, need {header} for {ndim} dims")
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(buf) != expected:
        raise IdxFormatError(
            f"{len(buf)} bytes but header {dims} x {dtype.itemsize} B needs {expected} "
            f"({'truncated' if len(buf) < expected else 'trailing bytes'})"
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(dims)
    return arr if dtype.isnative or dtype.itemsize == 1 else arr.astype(dtype.newbyteorder("="))


def read_idx(path: Path, folder: str = FMNIST_DIR) -> np.ndarray:
    """Read an IDX file (gzip'd if it ends in ``.gz``); any defect -> DataError naming ``path``."""
    try:
        raw = path.read_bytes()
        buf = gzip.decompress(raw) if path.suffix == ".gz" else raw
        return parse_idx(buf)
    except (OSError, EOFError, zlib.error, IdxFormatError) as e:
        # gzip.BadGzipFile is an OSError; a truncated .gz raises EOFError.
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"corrupt IDX file {path} ({reason}); {fetch_hint(folder, path.parent.parent)}"
        ) from None


def _fmnist_split(root: Path | None, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [n, 28, 28, 1] in [0,1], labels int32 [n]) of one Fashion-MNIST split."""
    img_path = require_file(root, FMNIST_DIR, f"{prefix}-images-idx3-ubyte.gz")
    lbl_path = require_file(root, FMNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz")
    images = read_idx(img_path)  # [n, 28, 28] uint8
    labels = read_idx(lbl_path)  # [n] uint8
    hint = fetch_hint(FMNIST_DIR, img_path.parent.parent)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{img_path}: expected uint8 [n, 28, 28], got {images.dtype} {images.shape}; {hint}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{lbl_path}: expected uint8 [{len(images)}] labels, got {labels.dtype} "
            f"{labels.shape}; {hint}"
        )
    if labels.max(initial=0) >= 10:
        raise DataError(f"{lbl_path}: label {labels.max()} outside 0..9; {hint}")
    x = np.multiply(images, np.float32(1.0 / 255.0), dtype=np.float32)[..., None]
    return x, labels.astype(np.int32)


def load_fmnist(root: Path | None) -> Dataset:
    """Fashion-MNIST: 60000 train / 10000 test 28x28x1 images in [0,1] (NHWC), 10 classes."""
    x_tr, y_tr = _fmnist_split(root, "train")
    x_te, y_te = _fmnist_split(root, "t10k")
    return Dataset("fmnist", x_tr, y_tr, x_te, y_te, 10, (28, 28, 1))
