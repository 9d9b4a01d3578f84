"""STUNner smartphone availability trace (Berta, Bilicki, Jelasity, "Defining and understanding
smartphone churn over the internet: a measurement study", IEEE P2P 2014), as shipped with the
Gossip Learning Framework (ormandi/Gossip-Learning-Framework @9f9d37f9, `res/trace/`).

Replays `<root>/stunner_smartphone_availability/` (DATA.md) as GoLF's `MobilTraceChurn`,
vectorized: each node reads random segments back to back, at its clock's time of day.
Notes: docs/NOTES.md#dltracesstunnerpy
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from dl.data.root import load_npz
from dl.devices.profiles import data_file
from dl.errors import ConfigError, DataError
from dl.traces.availability import Availability, from_states

FOLDER = "stunner_smartphone_availability"
THRESHOLDS = (100, 80)
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
NPZ_KEYS = ("user_index", "first_online", "start_ms", "tz_hours", "offsets", "durations_ms")


@dataclasses.dataclass(frozen=True)
class StunnerTrace:
    """Host-side CSR trace: S segments, D sessions."""

    user_index: np.ndarray  # [S] i32 user id, by first appearance
    first_online: np.ndarray  # [S] bool state at the segment start
    start_ms: np.ndarray  # [S] i64 epoch ms of the segment start (00:00 UTC)
    tz_hours: np.ndarray  # [S] i8 UTC offset of the user
    offsets: np.ndarray  # [S+1] i64 CSR row pointer into durations_ms
    durations_ms: np.ndarray  # [D] i64 alternating session durations

    @property
    def seg_len_ms(self) -> np.ndarray:  # [S] i64
        return np.add.reduceat(self.durations_ms, self.offsets[:-1])

    def session_segment(self) -> np.ndarray:  # [D] i64
        return np.repeat(np.arange(self.first_online.size), np.diff(self.offsets))

    def session_online(self) -> np.ndarray:  # [D] bool
        seg = self.session_segment()
        k = np.arange(self.durations_ms.size) - self.offsets[seg]
        return self.first_online[seg] ^ (k % 2 == 1)


def _check_threshold(threshold: int) -> None:
    if threshold not in THRESHOLDS:
        raise ConfigError(f"STUNner threshold must be one of {THRESHOLDS}, got {threshold}")


def load_stunner(root: Path | None, threshold: int = 100) -> StunnerTrace:
    """Reads `stunner_sessions_thr{threshold}.npz` (no pickle)."""
    _check_threshold(threshold)
    path = data_file(root, FOLDER, f"stunner_sessions_thr{threshold}.npz")
    arrays = load_npz(path, NPZ_KEYS, "STUNner npz")
    trace = StunnerTrace(
        user_index=arrays["user_index"].astype(np.int32),
        first_online=arrays["first_online"].astype(bool),
        start_ms=arrays["start_ms"].astype(np.int64),
        tz_hours=arrays["tz_hours"].astype(np.int8),
        offsets=arrays["offsets"].astype(np.int64),
        durations_ms=arrays["durations_ms"].astype(np.int64),
    )
    _validate(trace, path)
    return trace


def parse_peersim_sessions(path: Path) -> StunnerTrace:
    """Parses an original `peersim_session_*.txt` file into the npz layout."""
    users: dict[str, int] = {}
    cols: list[list[int]] = [[], [], [], []]
    durs: list[np.ndarray] = []
    try:
        with Path(path).open(encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                user, head = parts[0], [int(v) for v in parts[1:4]]
                if len(head) != 3 or len(parts) < 5:
                    raise ValueError(f"short line for user {user}")
                for c, v in zip(cols, [users.setdefault(user, len(users)), *head], strict=True):
                    c.append(v)
                durs.append(np.array(parts[4:], np.int64))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"malformed PeerSim session file {path}: {e}") from None
    counts = np.array([d.size for d in durs], np.int64)
    trace = StunnerTrace(
        user_index=np.array(cols[0], np.int32),
        first_online=np.array(cols[1]) == 1,
        start_ms=np.array(cols[2], np.int64),
        tz_hours=np.array(cols[3], np.int8),
        offsets=np.concatenate([[0], np.cumsum(counts)]),
        durations_ms=np.concatenate(durs) if durs else np.zeros(0, np.int64),
    )
    _validate(trace, Path(path))
    return trace


def _validate(tr: StunnerTrace, path: Path) -> None:
    s = tr.first_online.size
    ok = (
        s > 0
        and tr.offsets.shape == (s + 1,)
        and tr.offsets[0] == 0
        and tr.offsets[-1] == tr.durations_ms.size
        and np.all(np.diff(tr.offsets) > 0)
        and np.all(tr.durations_ms > 0)
        and all(a.shape == (s,) for a in (tr.user_index, tr.start_ms, tr.tz_hours))
    )
    if not ok:
        raise DataError(f"malformed STUNner trace {path}: inconsistent offsets/durations/shapes")


def drop_short_sessions(tr: StunnerTrace, min_session_s: float) -> StunnerTrace:
    """Absorbs sessions shorter than `min_session_s` into their neighbours (see module doc)."""
    min_ms = min_session_s * 1000.0
    if min_ms <= 0:
        return tr
    d, off = tr.durations_ms, tr.offsets
    seg, state, i = tr.session_segment(), tr.session_online(), np.arange(tr.durations_ms.size)
    keep = d >= min_ms
    last = np.maximum.accumulate(np.where(keep, i, -1))
    nxt = np.minimum.accumulate(np.where(keep, i, d.size)[::-1])[::-1]
    src = np.where(last >= off[seg], last, np.where(nxt < off[seg + 1], nxt, i))
    state = state[src]
    run = np.ones(d.size, bool)
    run[1:] = (state[1:] != state[:-1]) | (seg[1:] != seg[:-1])
    starts = np.flatnonzero(run)
    new_seg = seg[starts]
    counts = np.bincount(new_seg, minlength=tr.first_online.size)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    return dataclasses.replace(
        tr,
        first_online=state[starts][offsets[:-1]],
        offsets=offsets,
        durations_ms=np.add.reduceat(d, starts),
    )


def trace_online_fraction(tr: StunnerTrace) -> float:
    """Time-weighted online fraction of the whole trace (online ms / total ms)."""
    on = tr.session_online()
    return float(tr.durations_ms[on].sum() / tr.durations_ms.sum())


def trace_hourly_profile(tr: StunnerTrace, local: bool = False) -> np.ndarray:
    """[24] time-weighted online fraction per hour of day (UTC, or the user's local time)."""
    seg = tr.session_segment()
    seg_base = np.concatenate([[0], np.cumsum(tr.seg_len_ms)])[seg]
    shift = tr.tz_hours[seg].astype(np.int64) * HOUR_MS if local else 0
    e = np.cumsum(tr.durations_ms) - seg_base + shift  # session end, ms since its segment start
    s = e - tr.durations_ms
    on = tr.session_online()
    s, e = s[on], e[on]
    out = np.zeros(24)
    for h in range(24):
        g = lambda x, h=h: (x // DAY_MS) * HOUR_MS + np.clip(x % DAY_MS - h * HOUR_MS, 0, HOUR_MS)
        out[h] = (g(e) - g(s)).sum()
    days = tr.seg_len_ms.sum() / DAY_MS  # every hour of day occurs `days` times in total
    return out / (days * HOUR_MS)


def build_stunner(
    root: Path | None,
    threshold: int,
    n: int,
    horizon_s: float,
    seed: int,
    window_s: float | None = None,
    min_session_s: float = 0.0,
    align_tz: bool = False,
    trace: StunnerTrace | None = None,
) -> Availability:
    """Availability of N nodes over [0, horizon_s) replaying random STUNner segments/windows.

    `trace` skips the file read (it must already have short sessions dropped if wanted).
    """
    if n < 1 or not horizon_s > 0:
        raise ConfigError(f"need n >= 1 and horizon_s > 0, got n={n}, horizon_s={horizon_s}")
    if window_s is not None and not window_s >= 1.0:
        raise ConfigError(f"window_s must be >= 1 s or null, got {window_s}")
    if trace is None:
        trace = drop_short_sessions(load_stunner(root, threshold), min_session_s)
    rng = np.random.default_rng(seed)
    pieces = _draw_pieces(trace, n, horizon_s, window_s, align_tz, rng)
    node, times, states = _piece_events(trace, *pieces)
    return from_states(node, times, states, n, horizon_s)


def _draw_pieces(
    tr: StunnerTrace,
    n: int,
    horizon_s: float,
    window_s: float | None,
    align_tz: bool,
    rng: np.random.Generator,
) -> tuple[np.ndarray, ...]:
    """Per node, consecutive (segment, start offset a ms, length L ms) reads until the horizon."""
    seg_len = tr.seg_len_ms
    clock = np.zeros(n, np.int64)  # ms
    horizon_ms = int(np.ceil(horizon_s * 1000.0))
    out: list[tuple[np.ndarray, ...]] = []
    active = np.arange(n)
    while active.size:
        seg = rng.integers(0, seg_len.size, size=active.size)
        shift = tr.tz_hours[seg].astype(np.int64) * HOUR_MS if align_tz else 0
        a = (clock[active] - shift) % DAY_MS
        length = seg_len[seg]
        if window_s is not None:
            a = a + rng.integers(0, np.maximum(seg_len[seg] // DAY_MS, 1)) * DAY_MS
            length = np.minimum(int(round(window_s * 1000.0)), length)
        out.append((active, seg, a, length, clock[active].copy()))
        clock[active] += length
        active = active[clock[active] < horizon_ms]
    node, seg, a, length, start = (np.concatenate(c) for c in zip(*out, strict=True))
    order = np.lexsort((start, node))
    return node[order], seg[order], a[order], length[order], start[order]


def _piece_events(
    tr: StunnerTrace,
    node: np.ndarray,
    seg: np.ndarray,
    a: np.ndarray,
    length: np.ndarray,
    start: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """State-setting events (node, time s, state) of all pieces, grouped by node, time-sorted."""
    c = np.diff(tr.offsets)
    dseg = np.repeat(np.arange(c.size), 2 * c)  # doubled segments: every segment read twice
    k = np.arange(dseg.size) - np.repeat(2 * tr.offsets[:-1], 2 * c)
    src = tr.offsets[dseg] + k % c[dseg]
    dstate = tr.first_online[dseg] ^ ((k % c[dseg]) % 2 == 1)
    dcum = np.cumsum(tr.durations_ms[src])
    base = np.concatenate([[0], np.cumsum(2 * tr.seg_len_ms)])
    g0 = base[seg] + a
    i0 = np.searchsorted(dcum, g0, side="right")
    i_end = np.searchsorted(dcum, g0 + length, side="left")
    m = 1 + i_end - i0
    pid = np.repeat(np.arange(m.size), m)
    j = np.arange(pid.size) - np.repeat(np.cumsum(m) - m, m)
    sess = i0[pid] + j
    rel = np.where(j == 0, 0, dcum[sess - 1] - g0[pid])
    return node[pid], (start[pid] + rel) / 1000.0, dstate[sess]
