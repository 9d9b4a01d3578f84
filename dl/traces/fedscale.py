"""FedScale traces (Lai et al., "FedScale: Benchmarking Model and System Performance of Federated
Learning at Scale", ICML 2022; github.com/SymbioticLab/FedScale) in a pickle-free form.

Reads the npz files that `scripts/convert_fedscale.py` writes from FedScale's two pickles
(ALGORITHMS.md §4.2) with `allow_pickle=False`. Availability is replayed cyclically: the state
at t is the state at `t mod finish_time`.
Notes: docs/NOTES.md#dltracesfedscalepy
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from dl.data.root import load_npz
from dl.devices.profiles import DEFAULT_POWER_W, DeviceProfiles, make_profiles
from dl.errors import ConfigError, DataError
from dl.traces.availability import Availability, from_transitions

BEHAVE_FORMAT = "dl-fedscale-behave-v1"
CAPACITY_FORMAT = "dl-fedscale-capacity-v1"
CONVERT_HINT = "convert FedScale's pickles with `python scripts/convert_fedscale.py --help`"
ASSIGN = ("random", "modulo")


def _ids(keys: list) -> np.ndarray:
    if all(isinstance(k, int | np.integer) for k in keys):
        return np.array(keys, np.int64)
    return np.array([str(k) for k in keys], np.str_)


def client_transitions(active: list, inactive: list, finish: float) -> tuple[bool, np.ndarray]:
    """(state at t=0, sorted flip times in (0, finish)) of one client, read as described above."""
    a = [float(x) for x in active]
    i = [float(x) for x in inactive]
    init = bool(a) and ((bool(i) and i[0] < a[0]) or a[0] == 0)
    events = sorted([(x, True) for x in a if x > 0] + [(x, False) for x in i], key=lambda e: e[0])
    cur, flips = init, []
    for t, group in itertools.groupby(events, key=lambda e: e[0]):
        if t >= finish:
            break
        state = list(group)[-1][1]  # the last event of an instant wins
        if t <= 0:
            init = cur = state  # events at time 0 shape the initial state
        elif state != cur:
            flips.append(t)
            cur = state
    return bool(init), np.array(flips, np.float64)


def behave_to_arrays(trace: dict) -> dict[str, np.ndarray]:
    """FedScale `client_behave_trace` dict -> npz arrays (no pickle needed to read them back)."""
    keys = list(trace)
    first, finish, flips, models = [], [], [], []
    for k in keys:
        rec = trace[k]
        try:
            f = float(rec["finish_time"])
            if not np.isfinite(f) or f <= 0:
                raise ValueError(f"finish_time {f} is not a positive finite number")
            s, t = client_transitions(rec["active"], rec["inactive"], f)
            if not np.all(np.isfinite(t)):
                raise ValueError("active/inactive times hold NaN or inf")
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"bad FedScale behave record for client {k!r}: {e}") from None
        first.append(s)
        finish.append(f)
        flips.append(t)
        models.append(str(rec.get("model", "")))
    counts = np.array([t.size for t in flips], np.int64)
    return {
        "format": np.array(BEHAVE_FORMAT),
        "client_ids": _ids(keys),
        "first_online": np.array(first, bool),
        "finish_time_s": np.array(finish, np.float64),
        "offsets": np.concatenate([[0], np.cumsum(counts)]),
        "times_s": np.concatenate(flips) if flips else np.zeros(0),
        "model": np.array(models, np.str_),
    }


def capacity_to_arrays(cap: dict) -> dict[str, np.ndarray]:
    """FedScale `client_device_capacity` dict -> npz arrays."""
    keys = list(cap)
    try:
        comp = np.array([float(cap[k]["computation"]) for k in keys], np.float64)
        comm = np.array([float(cap[k]["communication"]) for k in keys], np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"bad FedScale capacity record: {e}") from None
    for name, a in (("computation", comp), ("communication", comm)):
        bad = ~np.isfinite(a) | (a <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"bad FedScale capacity record for client {keys[i]!r}: {name} {a[i]} is not a "
                f"positive finite number ({int(bad.sum())} such client(s))"
            )
    return {
        "format": np.array(CAPACITY_FORMAT),
        "client_ids": _ids(keys),
        "computation_ms": comp,
        "communication_kbps": comm,
    }


def _load(path: Path | str, fmt: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing FedScale npz {path}; {CONVERT_HINT}")
    try:
        z = load_npz(path, ("format",), "FedScale npz")
        if str(z["format"]) != fmt:
            raise DataError(f"{path} is not a {fmt} file")
        out = load_npz(path, keys, "FedScale npz")
    except DataError as e:
        raise DataError(f"{e}; {CONVERT_HINT}") from None
    return out


def load_behave(path: Path | str) -> dict[str, np.ndarray]:
    """Reads and checks a behave npz written by scripts/convert_fedscale.py."""
    z = _load(path, BEHAVE_FORMAT, ("first_online", "finish_time_s", "offsets", "times_s"))
    c, off, t, fin = z["first_online"].size, z["offsets"], z["times_s"], z["finish_time_s"]
    seg = np.repeat(np.arange(c), np.diff(off)) if off.size == c + 1 else None
    ok = (
        c > 0
        and seg is not None
        and off[0] == 0
        and off[-1] == t.size
        and np.all(fin > 0)
        and np.all(t > 0)
        and np.all(t < fin[seg])
        and np.all((np.diff(t) > 0) | (seg[1:] != seg[:-1]))
    )
    if not ok:
        raise DataError(f"malformed FedScale behave npz {path}; {CONVERT_HINT}")
    return z


def load_capacity(path: Path | str) -> dict[str, np.ndarray]:
    """Reads and checks a capacity npz written by scripts/convert_fedscale.py."""
    z = _load(path, CAPACITY_FORMAT, ("computation_ms", "communication_kbps"))
    comp, comm = z["computation_ms"], z["communication_kbps"]
    if comp.size == 0 or comp.shape != comm.shape:
        raise DataError(f"malformed FedScale capacity npz {path}: empty or shapes differ")
    for name, a in (("computation_ms", comp), ("communication_kbps", comm)):
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise DataError(
                f"malformed FedScale capacity npz {path}: {name} holds non-finite or "
                f"non-positive values; {CONVERT_HINT}"
            )
    return z


def assign_rows(rows: int, n: int, seed: int, assign: str = "random") -> np.ndarray:
    """[n] i64 trace row per node (see module docstring)."""
    if assign not in ASSIGN:
        raise ConfigError(f"unknown assign '{assign}' (choose from: {', '.join(ASSIGN)})")
    if assign == "modulo":
        return np.arange(n) % rows
    return np.random.default_rng(seed).choice(rows, size=n, replace=n > rows)


def build_fedscale(
    npz_path: Path | str, n: int, horizon_s: float, seed: int, assign: str = "random"
) -> Availability:
    """Availability of N nodes over [0, horizon_s) replaying FedScale behave rows cyclically."""
    if n < 1 or not horizon_s > 0:
        raise ConfigError(f"need n >= 1 and horizon_s > 0, got n={n}, horizon_s={horizon_s}")
    z = load_behave(npz_path)
    row = assign_rows(z["first_online"].size, n, seed, assign)
    off, fin = z["offsets"], z["finish_time_s"][row]
    first, k = z["first_online"][row], np.diff(off)[row]
    wrap = (k % 2 == 1).astype(np.int64)  # the period ends in the other state: flip at each restart
    tmpl = k + wrap  # per period: [restart flip] + k flips
    periods = np.ceil(horizon_s / fin).astype(np.int64)
    m = periods * tmpl
    node = np.repeat(np.arange(n), m)
    q = np.arange(node.size) - np.repeat(np.cumsum(m) - m, m)
    r, e = q // tmpl[node], q % tmpl[node]
    j = e - wrap[node]  # index of the within-period flip, -1 for the restart flip
    within = np.where(j >= 0, z["times_s"][np.maximum(off[row][node] + j, 0)], 0.0)
    times = r * fin[node] + within
    keep = ((j >= 0) | (r > 0)) & (times < horizon_s)
    return from_transitions(node[keep], times[keep], first, n)


def fedscale_profiles(
    npz_path: Path | str,
    n: int,
    seed: int,
    power_w: float = DEFAULT_POWER_W,
    assign: str = "random",
) -> DeviceProfiles:
    """DeviceProfiles from a capacity npz: `computation` ms/sample, `communication` kbit/s both
    ways, constant training power; `device_id` is the capacity row."""
    z = load_capacity(npz_path)
    row = assign_rows(z["computation_ms"].size, n, seed, assign)
    comm = z["communication_kbps"][row]
    return make_profiles(z["computation_ms"][row], comm, comm, np.full(n, power_w), row)


def describe(arrays: dict[str, Any]) -> str:
    """One-line summary of converted arrays (used by the converter script)."""
    ids = arrays["client_ids"]
    if "times_s" in arrays:
        fin = arrays["finish_time_s"]
        return (
            f"{ids.size} clients, {arrays['times_s'].size} transitions, finish_time "
            f"{fin.min():.0f}-{fin.max():.0f} s, {arrays['first_online'].mean():.1%} start online"
        )
    comp, comm = arrays["computation_ms"], arrays["communication_kbps"]
    return (
        f"{ids.size} clients, computation median {np.median(comp):.1f} ms/sample, "
        f"communication median {np.median(comm):.0f} kbit/s"
    )
