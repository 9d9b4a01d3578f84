"""Synthetic availability for tests and what-if studies (no data files needed).

`always_on` (no churn), `bernoulli` (online per period with probability `p_online`, i.i.d.) and
`diurnal` (per-slot probability following a daily sinusoid, default peak 03:00, per-node phase
jitter). Pure functions of their arguments (numpy `default_rng(seed)`), returning the common
`Availability` form for [0, horizon_s).
Notes: docs/NOTES.md#dltracessyntheticpy
"""

from __future__ import annotations

import numpy as np

from dl.errors import ConfigError
from dl.traces.availability import Availability, from_transitions

DAY_S = 86_400.0


def always_on(n: int) -> Availability:
    """N nodes online for ever (no transitions)."""
    return from_transitions(np.zeros(0, np.int64), np.zeros(0), np.ones(n, bool), n)


def _from_slot_states(
    draw, n: int, k: int, slot_s: float, horizon_s: float, chunk: int = 4096
) -> Availability:
    """Packs per-slot states into Availability; slot j covers [j*slot_s, (j+1)*slot_s).

    `draw(lo, hi)` returns the [hi-lo, k] bool states of nodes lo..hi-1; it is called in node
    order, in chunks, so peak memory stays near the size of the result.
    """
    nodes, times, first = [], [], []
    for lo in range(0, n, chunk):
        online = draw(lo, min(n, lo + chunk))
        row, col = np.nonzero(online[:, 1:] != online[:, :-1])
        nodes.append(row + lo)
        times.append((col + 1) * slot_s)
        first.append(online[:, 0])
    keep = np.concatenate(times) < horizon_s
    return from_transitions(
        np.concatenate(nodes)[keep], np.concatenate(times)[keep], np.concatenate(first), n
    )


def _slots(horizon_s: float, slot_s: float) -> int:
    if not horizon_s > 0 or not slot_s > 0:
        raise ConfigError(f"horizon_s and period/slot must be > 0, got {horizon_s}, {slot_s}")
    return int(np.ceil(horizon_s / slot_s))


def bernoulli(
    n: int, horizon_s: float, period_s: float, p_online: float, seed: int
) -> Availability:
    """Each node is online in each period with probability `p_online`, independently."""
    if not 0.0 <= p_online <= 1.0:
        raise ConfigError(f"p_online must be in [0, 1], got {p_online}")
    k = _slots(horizon_s, period_s)
    rng = np.random.default_rng(seed)
    draw = lambda lo, hi: rng.random((hi - lo, k)) < p_online
    return _from_slot_states(draw, n, k, period_s, horizon_s)


def diurnal_probability(
    t: np.ndarray, mean_online: float, amplitude: float, period_s: float, peak_s: float
) -> np.ndarray:
    """Online probability at times t (before per-node jitter), clipped to [0, 1]."""
    return np.clip(mean_online + amplitude * np.cos(2 * np.pi * (t - peak_s) / period_s), 0, 1)


def diurnal(
    n: int,
    horizon_s: float,
    seed: int,
    mean_online: float,
    amplitude: float,
    period_s: float = DAY_S,
    slot_s: float = 900.0,
    peak_s: float = 3 * 3600.0,
    jitter_s: float = 3600.0,
) -> Availability:
    """Sinusoidal online probability per slot, per-node phase jitter (see module docstring)."""
    if not 0.0 <= mean_online <= 1.0 or amplitude < 0 or jitter_s < 0:
        raise ConfigError(
            f"need 0 <= mean_online <= 1, amplitude >= 0, jitter_s >= 0; got "
            f"{mean_online}, {amplitude}, {jitter_s}"
        )
    k = _slots(horizon_s, slot_s)
    rng = np.random.default_rng(seed)
    phase = rng.normal(0.0, jitter_s, size=(n, 1))
    mid = (np.arange(k) + 0.5)[None, :] * slot_s

    def draw(lo: int, hi: int) -> np.ndarray:
        p = diurnal_probability(mid - phase[lo:hi], mean_online, amplitude, period_s, peak_s)
        return rng.random((hi - lo, k)) < p

    return _from_slot_states(draw, n, k, slot_s, horizon_s)
