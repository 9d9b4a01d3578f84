"""Per-node device profiles: compute speed, up/down bandwidth, training power.

`constant_profiles`: every node the same device (FedScale's fallback style). `flash_profiles`:
synthetic from the device catalogues of FLASH (Yang et al., WWW'21), NOT the FedScale capacity
trace: `ms_per_sample = ref_ms_per_sample * ref_score / score`, one Gaussian bandwidth draw per
node and direction. Defaults anchored on SkipTrain (Guerra et al.): `DEFAULT_REF_MS_PER_SAMPLE
= 2.0` (a median phone, LeNet-size forward pass), `DEFAULT_POWER_W = 3.0` (ALGORITHMS.md §5).
Notes: docs/NOTES.md#dldevicesprofilespy
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import struct

from dl.errors import ConfigError, DataError

FLASH_DIR = "flash_device_profiles"
SKIPTRAIN_DIR = "device_energy_skiptrain"
DEFAULT_REF_MS_PER_SAMPLE = 2.0  # median catalogue phone, LeNet-size forward pass (SkipTrain)
DEFAULT_POWER_W = 3.0  # ALGORITHMS.md §5
DEFAULT_FLOOR_KBPS = 50.0  # KB/s (FLASH units): clip for Gaussian bandwidth draws
SCORE_KINDS = ("ai", "cpu_f")


@struct.dataclass
class DeviceProfiles:
    """Per-node device capacity; every field has the node axis first."""

    ms_per_sample: jnp.ndarray  # [N] f32 forward ms per example (FedScale `computation`)
    up_kbps: jnp.ndarray  # [N] f32 upload bandwidth, kbit/s
    down_kbps: jnp.ndarray  # [N] f32 download bandwidth, kbit/s
    power_w: jnp.ndarray  # [N] f32 training power, W
    device_id: jnp.ndarray  # [N] i32 index into the source catalogue, -1 for constant


def make_profiles(ms_per_sample, up_kbps, down_kbps, power_w, device_id) -> DeviceProfiles:
    """Builds DeviceProfiles from host arrays, casting to the documented dtypes."""
    f32 = lambda a: jnp.asarray(np.asarray(a, np.float32))
    return DeviceProfiles(
        ms_per_sample=f32(ms_per_sample),
        up_kbps=f32(up_kbps),
        down_kbps=f32(down_kbps),
        power_w=f32(power_w),
        device_id=jnp.asarray(np.asarray(device_id, np.int32)),
    )


def constant_profiles(
    n: int,
    ms_per_sample: float = 5.0,
    up_kbps: float = 10_000.0,
    down_kbps: float = 10_000.0,
    power_w: float = DEFAULT_POWER_W,
) -> DeviceProfiles:
    """N identical devices (device_id -1)."""
    _check_positive(ms_per_sample=ms_per_sample, up_kbps=up_kbps, down_kbps=down_kbps)
    if power_w < 0:
        raise ConfigError(f"power_w must be >= 0, got {power_w}")
    full = lambda v: np.full((n,), v, np.float32)
    return make_profiles(
        full(ms_per_sample), full(up_kbps), full(down_kbps), full(power_w), np.full((n,), -1)
    )


def data_file(root: Path | None, folder: str, name: str) -> Path:
    """`root/folder/name`, or a DataError naming the missing file and how to get it."""
    hint = f"run `python scripts/fetch_data.py {folder} --root <dir>` or set data.root=<dir>"
    if root is None:
        raise DataError(f"no data root given for {folder}/{name}; {hint}")
    path = Path(root) / folder / name
    if not path.is_file():
        raise DataError(f"missing data file {path}; {hint}")
    return path


def _load_json(root: Path | None, name: str) -> Any:
    path = data_file(root, FLASH_DIR, name)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"corrupt json {path}: {str(e).splitlines()[0]}") from None


def _bad(root: Path | None, name: str, what: str) -> DataError:
    return DataError(f"malformed {Path(root or '.') / FLASH_DIR / name}: {what}")


def load_flash_catalogue(root: Path | None, score: str = "ai") -> tuple[list[str], np.ndarray]:
    """Phone model names (file order of benchmark2score.json) and their scores [M] f64.

    `score="ai"`: the overall AI-Benchmark score (includes NPU/FP16 accelerators; 360x spread).
    `score="cpu_f"`: the CPU float score of `raw_ai_benchmark_list.json` (41x spread), closer to
    what on-device FP32 training uses.
    """
    if score not in SCORE_KINDS:
        raise ConfigError(f"unknown score '{score}' (choose from: {', '.join(SCORE_KINDS)})")
    b2s = _load_json(root, "benchmark2score.json")
    if not isinstance(b2s, dict) or not b2s:
        raise _bad(root, "benchmark2score.json", "expected a non-empty {model: score} object")
    names = list(b2s)
    try:
        ai = np.array([float(b2s[k]) for k in names])
    except (TypeError, ValueError):
        raise _bad(root, "benchmark2score.json", "a score is not a number") from None
    if score == "ai":
        scores = ai
    else:
        raw = _load_json(root, "raw_ai_benchmark_list.json")
        rec: dict[str, dict] = {}
        try:
            for r in raw:  # duplicates (SoC variants): prefer the one whose AI score matches
                if r["Model"] not in rec or str(int(b2s.get(r["Model"], -1))) in r["AI_Score"]:
                    rec[r["Model"]] = r
            scores = np.array([float(rec[k]["CPU_F_AI_Score"]) for k in names])
        except (KeyError, TypeError, ValueError) as e:
            raise _bad(root, "raw_ai_benchmark_list.json", f"bad or missing record {e}") from None
    if not np.all(scores > 0):
        raise _bad(root, "benchmark2score.json", "scores must be > 0")
    return names, scores


def reachable_models(root: Path | None, names: list[str]) -> np.ndarray:
    """Indices into `names` of the models reachable from real2benchmark.json ('unknown' dropped)."""
    r2b = _load_json(root, "real2benchmark.json")
    if not isinstance(r2b, dict):
        raise _bad(root, "real2benchmark.json", "expected a {code: model} object")
    targets = set(r2b.values()) - {"unknown"}
    idx = np.array([i for i, k in enumerate(names) if k in targets], np.int64)
    if idx.size == 0:
        raise _bad(root, "real2benchmark.json", "no model maps into benchmark2score.json")
    return idx


def load_speed_distri(root: Path | None) -> np.ndarray:
    """[19, 4] f64 rows (down_u, down_sigma, up_u, up_sigma) in KB/s, file order."""
    sd = _load_json(root, "speed_distri.json")
    keys = ("down_u", "down_sigma", "up_u", "up_sigma")
    try:
        rows = np.array([[float(v[k]) for k in keys] for v in sd.values()])
    except (AttributeError, KeyError, TypeError, ValueError):
        raise _bad(root, "speed_distri.json", f"each device needs {', '.join(keys)}") from None
    if rows.size == 0 or np.any(rows[:, [0, 2]] <= 0) or np.any(rows[:, [1, 3]] < 0):
        raise _bad(root, "speed_distri.json", "means must be > 0 and sigmas >= 0")
    return rows


def flash_profiles(
    root: Path | None,
    n: int,
    seed: int,
    ref_ms_per_sample: float = DEFAULT_REF_MS_PER_SAMPLE,
    ref_score: float | None = None,
    power_w: float = DEFAULT_POWER_W,
    restrict_to_real: bool = False,
    score: str = "ai",
    floor_kBps: float = DEFAULT_FLOOR_KBPS,
    power_w_range: tuple[float, float] | None = None,
) -> DeviceProfiles:
    """Synthetic-from-real-catalogues profiles for N nodes; a pure function of the files and seed.

    `device_id` is the phone model's index in benchmark2score.json. `ref_score=None` means the
    median score of the whole catalogue (of the chosen `score` kind).
    """
    _check_positive(ref_ms_per_sample=ref_ms_per_sample, floor_kBps=floor_kBps)
    names, scores = load_flash_catalogue(root, score)
    pool = reachable_models(root, names) if restrict_to_real else np.arange(len(names))
    ref = float(np.median(scores)) if ref_score is None else float(ref_score)
    _check_positive(ref_score=ref)
    speed = load_speed_distri(root)
    rng = np.random.default_rng(seed)
    model = pool[rng.integers(0, pool.size, size=n)]
    ms = ref_ms_per_sample * ref / scores[model]
    phone = rng.integers(0, speed.shape[0], size=n)
    down_kBps = np.maximum(rng.normal(speed[phone, 0], speed[phone, 1]), floor_kBps)
    up_kBps = np.maximum(rng.normal(speed[phone, 2], speed[phone, 3]), floor_kBps)
    if power_w_range is None:
        if power_w < 0:
            raise ConfigError(f"power_w must be >= 0, got {power_w}")
        power = np.full((n,), power_w)
    else:
        lo, hi = power_w_range
        if not 0 <= lo <= hi:
            raise ConfigError(f"power_w_range must satisfy 0 <= lo <= hi, got {power_w_range}")
        power = rng.uniform(lo, hi, size=n)
    return make_profiles(ms, up_kBps * 8.0, down_kBps * 8.0, power, model)


def skiptrain_power_w(root: Path | None) -> dict[str, np.ndarray]:
    """SkipTrain's implied training power per phone and model: `Energy(Wh)*3600 / round time (s)`.

    Returns {csv stem: [4] f64 W}, plus `<stem>:max_power` with the CSV's max-power column.
    """
    out: dict[str, np.ndarray] = {}
    for name in ("Energy_traces_CIFAR-10.csv", "Energy_traces_Femnist.csv"):
        path = data_file(root, SKIPTRAIN_DIR, name)
        try:
            with path.open(encoding="utf-8-sig", newline="") as f:
                rows = list(csv.reader(f))
            cols = rows[0]
            t_ms = [float(r[4]) for r in rows[1:]]  # "Training Time <model> (ms) total"
            wh = [float(r[cols.index("Energy (Wh)")]) for r in rows[1:]]
            pmax = [float(r[cols.index("Max Power consumption (W)")]) for r in rows[1:]]
        except (OSError, IndexError, ValueError) as e:
            raise DataError(f"malformed SkipTrain csv {path}: {e}") from None
        stem = Path(name).stem
        out[stem] = np.array(wh) * 3600.0 / (np.array(t_ms) / 1000.0)
        out[f"{stem}:max_power"] = np.array(pmax)
    return out


def _check_positive(**values: float) -> None:
    for k, v in values.items():
        if not v > 0:
            raise ConfigError(f"{k} must be > 0, got {v}")
