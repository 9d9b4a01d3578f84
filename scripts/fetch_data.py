"""Download the public data files `dl` reads, into the layout of shared/data.

Usage::

    python scripts/fetch_data.py                       # everything, into data/
    python scripts/fetch_data.py fmnist shakespeare --root ~/dl-data
    python scripts/fetch_data.py --list                # what would be fetched, from where

Then run with ``data.root=<root>`` (or ``export DL_DATA_ROOT=<root>``). Sources are pinned commits
or the original publishers (see each folder's PROVENANCE.md in shared/data). Every file is written
to a temporary name, checked, then renamed into place, so an interrupted run leaves no partial file.
Files from pinned commits are checked against the md5 of the copies the project was built with;
for UCI files a mismatch only warns. The simulator never calls this script (no runtime downloads).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np

GH = "https://raw.githubusercontent.com"
FMNIST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
GOLF = f"{GH}/ormandi/Gossip-Learning-Framework/9f9d37f9bbcaee28e9c35ba0e1a975be8451251c/res/trace"
FLASH = f"{GH}/PKU-Chengxu/FLASH/55cbede0131877b583ed55333e980985a1925afd/models"
SKIPTRAIN = f"{GH}/sacs-epfl/SkipTrain/1339be69fffa986507849254a42bfdd59e5e0f06/tutorial"
LATENCY = f"{GH}/devos50/decentralized-learning/10f6d253d3d2bd63d0146911949ce30d356b7947"
CHAR_RNN = f"{GH}/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare"
SKLEARN = "sklearn:"  # copied from the installed scikit-learn, no download

# folder -> [(file name, url, check)]; check = (kind, md5) with kind "md5" (strict), "gunzip"
# (strict, md5 of the decompressed bytes) or "warn" (a mismatch only warns), or None.
Check = tuple[str, str] | None
SOURCES: dict[str, list[tuple[str, str, Check]]] = {
    "fashion_mnist": [
        (f, f"{FMNIST}/{f}", ("gunzip", md5))
        for f, md5 in [
            ("train-images-idx3-ubyte.gz", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
            ("train-labels-idx1-ubyte.gz", "9018921c3c673c538a1fc5bad174d6f9"),
            ("t10k-images-idx3-ubyte.gz", "8181f5470baa50b63fa0f6fddb340f0a"),
            ("t10k-labels-idx1-ubyte.gz", "15d484375f8d13e6eb1aabb0c3f46965"),
        ]
    ],
    "tiny_shakespeare": [
        ("input.txt", f"{CHAR_RNN}/input.txt", ("md5", "6fb458f1232090904fb40fe944165e91")),
    ],
    "spambase": [
        (
            "spambase.data",
            f"{UCI}/spambase/spambase.data",
            ("warn", "2e66f086f61a3af28ddb96a82dcb0297"),
        ),
        ("spambase.names", f"{UCI}/spambase/spambase.names", None),
    ],
    "pendigits": [
        (
            "pendigits.tra",
            f"{UCI}/pendigits/pendigits.tra",
            ("warn", "8496aa7aa9bfc0e11f56ed4eba23d079"),
        ),
        (
            "pendigits.tes",
            f"{UCI}/pendigits/pendigits.tes",
            ("warn", "275078cd1761461e3cf39a3926c6ca2f"),
        ),
    ],
    "sklearn_digits": [
        ("digits.csv.gz", SKLEARN, ("warn", "9b335364a7bfd63947c7480a5bd51f2d")),
    ],
    "stunner_smartphone_availability": [
        (f"peersim_session_{t}.txt", f"{GOLF}/peersim_session_{t}.txt", ("md5", md5))
        for t, md5 in [
            ("100", "53195eed7c3e6be430bab7810f868748"),
            ("80", "1902b9a39921cfcea7e7f4a0d24fcd08"),
        ]
    ],
    "pairwise_latency_227": [
        ("latencies.txt", f"{LATENCY}/latencies.txt", ("md5", "3448bea3608f286ea2b654aa54d24c12")),
    ],
    "flash_device_profiles": [
        (
            "speed_distri.json",
            f"{FLASH}/speed_distri.json",
            ("md5", "f137fbe09ccad9558e06f5e4beddca9e"),
        ),
    ]
    + [
        (f, f"{FLASH}/utils/device_util/{f}", ("md5", md5))
        for f, md5 in [
            ("benchmark2score.json", "174bd4baf352646f8d2d3b0ff48feac2"),
            ("raw_ai_benchmark_list.json", "ba95edaddcb4ddbe45fb064e36ae54b8"),
            ("real2benchmark.json", "65f454224c3985b7cb50aee60831f33a"),
            ("supported_devices.json", "d88ff30104607a27c22a52251b155c25"),
        ]
    ],
    "device_energy_skiptrain": [
        (f, f"{SKIPTRAIN}/{f}", ("md5", md5))
        for f, md5 in [
            ("Energy_traces_CIFAR-10.csv", "1aff4ff429524370929eb13639713f29"),
            ("Energy_traces_Femnist.csv", "443f31155ccbd0df9f9579c14020746f"),
        ]
    ],
}
ALIASES = {
    "fmnist": "fashion_mnist",
    "shakespeare": "tiny_shakespeare",
    "digits": "sklearn_digits",
    "stunner": "stunner_smartphone_availability",
    "latency": "pairwise_latency_227",
    "flash": "flash_device_profiles",
    "skiptrain": "device_energy_skiptrain",
}


def stunner_to_npz(txt: Path, npz: Path) -> None:
    """Lossless CSR conversion of a PeerSim session trace (user hashes become first-seen indices).

    Line format: ``<user> <first_online> <start_ms> <tz_hours> <d_1> ... <d_k>`` (durations in ms).
    """
    users: dict[str, int] = {}
    user_index, first_online, start_ms, tz_hours, offsets, durations = [], [], [], [], [0], []
    for line in txt.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        user_index.append(users.setdefault(fields[0], len(users)))
        first_online.append(fields[1] == "1")
        start_ms.append(int(fields[2]))
        tz_hours.append(int(fields[3]))
        durations.extend(int(d) for d in fields[4:])
        offsets.append(len(durations))
    _atomic(
        npz,
        lambda tmp: np.savez_compressed(
            tmp,
            user_index=np.array(user_index, np.int32),  # [S]
            first_online=np.array(first_online, bool),  # [S]
            start_ms=np.array(start_ms, np.int64),  # [S]
            tz_hours=np.array(tz_hours, np.int8),  # [S]
            offsets=np.array(offsets, np.int64),  # [S+1]
            durations_ms=np.array(durations, np.int32),  # [offsets[-1]]
        ),
        suffix=".npz",
    )


def _atomic(dest: Path, write: Callable[[Path], None], suffix: str = "") -> None:
    """Run ``write(tmp)`` on a temporary file beside ``dest``, then rename it onto ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".part{suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _md5(path: Path, gunzip: bool = False) -> str:
    h = hashlib.md5()
    with gzip.open(path, "rb") if gunzip else open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, tmp: Path) -> None:
    if url == SKLEARN:
        from importlib.resources import files

        with (files("sklearn.datasets") / "data" / "digits.csv.gz").open("rb") as src:
            tmp.write_bytes(src.read())
        return
    req = urllib.request.Request(url, headers={"User-Agent": "dl-fetch-data/0.1"})
    with urllib.request.urlopen(req, timeout=60) as resp, open(tmp, "wb") as out:
        shutil.copyfileobj(resp, out)


def _verify(path: Path, check: Check, label: str) -> None:
    """Raise (strict) or warn (``warn``) when the md5 of ``path`` is not the expected one."""
    if check is None:
        return
    kind, expected = check
    got = _md5(path, gunzip=kind == "gunzip")
    if got == expected:
        return
    msg = f"{label}: md5 {got} differs from the project's copy ({expected})"
    if kind == "warn":
        print(f"warning: {msg}; kept it", file=sys.stderr)
    else:
        raise RuntimeError(msg)


def fetch(folder: str, root: Path, force: bool) -> None:
    for fname, url, check in SOURCES[folder]:
        dest = root / folder / fname
        if dest.is_file() and not force:
            print(f"have  {dest}")
            continue
        source = "scikit-learn's bundled copy" if url == SKLEARN else url
        print(f"fetch {source} -> {dest}", flush=True)

        def write(tmp: Path, url: str = url, check: Check = check, dest: Path = dest) -> None:
            _download(url, tmp)
            _verify(tmp, check, str(dest))

        _atomic(dest, write)
    if folder == "stunner_smartphone_availability":
        for thr in ("100", "80"):
            npz = root / folder / f"stunner_sessions_thr{thr}.npz"
            if force or not npz.is_file():
                print(f"convert -> {npz}")
                stunner_to_npz(root / folder / f"peersim_session_{thr}.txt", npz)


def main(argv: list[str] | None = None) -> int:
    names = sorted(SOURCES) + sorted(ALIASES)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"what to fetch (default: all): {', '.join(names)}")
    ap.add_argument("--root", default="data", help="data root to write into (default: data/)")
    ap.add_argument("--force", action="store_true", help="download again even if a file exists")
    ap.add_argument("--list", action="store_true", help="print sources and exit")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if ALIASES.get(n, n) not in SOURCES]
    if unknown:
        ap.error(f"unknown name(s) {unknown}; valid: {', '.join(names)}")
    folders = list(dict.fromkeys(ALIASES.get(n, n) for n in args.names)) or list(SOURCES)
    root = Path(args.root).expanduser()
    if args.list:
        for folder in folders:
            for fname, url, _ in SOURCES[folder]:
                print(f"{folder}/{fname}\t{url}")
        return 0
    failed = []
    for folder in folders:
        try:
            fetch(folder, root, args.force)
        except (OSError, RuntimeError, ValueError) as e:
            print(f"error: {folder}: {e}", file=sys.stderr)
            failed.append(folder)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"done; run with data.root={root.resolve()} (or export DL_DATA_ROOT={root.resolve()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
