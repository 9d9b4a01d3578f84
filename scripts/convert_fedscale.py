"""Convert FedScale's trace pickles into the pickle-free npz files that `dl` reads.

FedScale (Lai et al., ICML 2022) ships `client_behave_trace` and `client_device_capacity` as dict
pickles (SymbioticLab/FedScale `benchmark/dataset/data/device_info/`, or sacs-epfl/
decentralized-learning-simulator `data/fedscale_traces`, `data/fedscale_churn`). They are too large
to ship here; obtain them yourself, then run once:

    python scripts/convert_fedscale.py --behave client_behave_trace \\
        --capacity client_device_capacity --out <data root>/fedscale

which writes `fedscale_behave.npz` and/or `fedscale_capacity.npz` into `--out`. The pickles are read
with a restricted unpickler that only rebuilds plain containers and numbers (and numpy scalars),
so a tampered file cannot run code. Formats: see `dl/traces/fedscale.py`.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from dl.errors import DataError, DLError
from dl.traces.fedscale import (
    behave_to_arrays,
    capacity_to_arrays,
    describe,
    load_behave,
    load_capacity,
)

BEHAVE_NAME = "fedscale_behave.npz"
CAPACITY_NAME = "fedscale_capacity.npz"
_ALLOWED = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "int", "float", "str", "bool")
} | {
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_pickle(path: Path) -> dict:
    """A FedScale dict pickle, rebuilt from plain types only."""
    try:
        with Path(path).open("rb") as f:
            obj = _PlainUnpickler(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DataError(f"cannot read FedScale pickle {path}: {e}") from None
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"FedScale pickle {path} is not a non-empty dict of clients")
    return obj


def convert(behave: Path | None, capacity: Path | None, out: Path) -> list[Path]:
    """Converts the given pickles into `out`; returns the written paths."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create --out {out}: {e.strerror or e}") from None
    written = []
    jobs = (
        (behave, BEHAVE_NAME, behave_to_arrays, load_behave),
        (capacity, CAPACITY_NAME, capacity_to_arrays, load_capacity),
    )
    for src, name, fn, check in jobs:
        if src is None:
            continue
        arrays = fn(read_pickle(src))  # refuses NaN, inf and non-positive values
        dst = out / name
        tmp = dst.with_suffix(".tmp.npz")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            check(tmp)  # the reader's own checks, before the file takes the final name
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise DataError(f"cannot write {dst}: {e.strerror or e}") from None
        except DLError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(dst)  # never leave a half-written or bad file under the final name
        print(f"{dst}: {describe(arrays)}")
        written.append(dst)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--behave", type=Path, help="FedScale client_behave_trace pickle")
    p.add_argument("--capacity", type=Path, help="FedScale client_device_capacity pickle")
    p.add_argument("--out", type=Path, required=True, help="output folder for the npz files")
    args = p.parse_args(argv)
    if args.behave is None and args.capacity is None:
        p.error("give --behave and/or --capacity")
    try:
        convert(args.behave, args.capacity, args.out)
    except DLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
